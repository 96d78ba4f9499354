#include "storcrypt/testing/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace storcrypt::testing {

ProcessResult run(const std::vector<std::string>& argv, const std::string& input) {
  ProcessResult res;
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    res.err = "pipe failed";
    return res;
  }
  pid_t pid = fork();
  if (pid < 0) {
    res.err = "fork failed";
    return res;
  }
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    std::vector<char*> a;
    for (auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    execvp(a[0], a.data());
    dprintf(2, "exec %s: %s\n", a[0], strerror(errno));
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  // Feed stdin and drain stdout/stderr together so no pipe fills up.
  size_t written = 0;
  int infd = in[1];
  if (input.empty()) {
    close(infd);
    infd = -1;
  }
  bool out_open = true, err_open = true;
  char buf[65536];
  while (out_open || err_open || infd >= 0) {
    pollfd p[3];
    int n = 0;
    int oi = -1, ei = -1, ii = -1;
    if (out_open) {
      oi = n;
      p[n++] = {out[0], POLLIN, 0};
    }
    if (err_open) {
      ei = n;
      p[n++] = {err[0], POLLIN, 0};
    }
    if (infd >= 0) {
      ii = n;
      p[n++] = {infd, POLLOUT, 0};
    }
    if (poll(p, n, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (oi >= 0 && p[oi].revents) {
      ssize_t k = read(out[0], buf, sizeof buf);
      if (k <= 0)
        out_open = false;
      else
        res.out.append(buf, static_cast<size_t>(k));
    }
    if (ei >= 0 && p[ei].revents) {
      ssize_t k = read(err[0], buf, sizeof buf);
      if (k <= 0)
        err_open = false;
      else
        res.err.append(buf, static_cast<size_t>(k));
    }
    if (ii >= 0 && p[ii].revents) {
      ssize_t k = write(infd, input.data() + written, input.size() - written);
      if (k > 0) written += static_cast<size_t>(k);
      if (k <= 0 || written == input.size()) {
        close(infd);
        infd = -1;
      }
    }
  }
  close(out[0]);
  close(err[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  res.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return res;
}

ProcessResult sh(const std::string& command) { return run({"/bin/sh", "-c", command}); }

}  // namespace storcrypt::testing
