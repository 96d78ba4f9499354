// KMIP client benchmark against one PyKMIP server started for this run.
// Baselines measured in the same run: PyKMIP's own Python client
// (kmip.pie.client.ProxyKmipClient), persistent vs new connections, one
// 50-item batch vs 50 round trips. Prints ratios. Not a ctest test.
//
//   build/tests/bench/kmip/kmip_bench [gets]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "../../host/kmip/pykmip_fixture.h"
#include "storcrypt/kmip/client.h"
#include "storcrypt/testing/process.h"

using namespace storcrypt;
using namespace storcrypt::kmip;

namespace {

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

struct Measure {
  double ops_per_s = 0;
  double cpu_us_per_op = 0;
  int ops = 0;
};

// Sum over rounds: total ops / total wall time, total CPU / total ops.
struct Total {
  double ops = 0, wall = 0, cpu_us = 0;
  void add(const Measure& m) {
    ops += m.ops;
    wall += m.ops / m.ops_per_s;
    cpu_us += m.cpu_us_per_op * m.ops;
  }
  Measure result() const { return {ops / wall, cpu_us / ops, static_cast<int>(ops)}; }
};

template <typename F>
Measure measure(int ops, F&& body) {
  double c0 = cpu_seconds();
  auto t0 = std::chrono::steady_clock::now();
  body();
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double cpu = cpu_seconds() - c0;
  return {ops / wall, cpu * 1e6 / ops, ops};
}

[[noreturn]] void die(const std::string& m) {
  std::fprintf(stderr, "kmip_bench: %s\n", m.c_str());
  std::exit(1);
}

const char* kPythonClient = R"PY(
import sys, time, warnings
warnings.filterwarnings("ignore")
from kmip.pie.client import ProxyKmipClient
host, port, cert, key, ca, uid, n = sys.argv[1:8]
n = int(n)
c = ProxyKmipClient(hostname=host, port=int(port), cert=cert, key=key, ca=ca,
                    ssl_version="PROTOCOL_TLSv1_2")
c.open()
expected = c.get(uid).value
t0 = time.perf_counter(); c0 = time.process_time()
for _ in range(n):
    if c.get(uid).value != expected:
        raise SystemExit("wrong key")
t1 = time.perf_counter(); c1 = time.process_time()
c.close()
print("%f %f" % (n / (t1 - t0), (c1 - c0) * 1e6 / n))
)PY";

}  // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 300;
  std::string why;
  if (!kmip::testing::pykmip_available(why)) die(why);
  std::string err;
  auto pki = kmip::testing::make_pki(err);
  if (!err.empty()) die(err);
  kmip::testing::PyKmipServer server;
  if (!server.start(pki, err)) die(err);

  auto cfg = kmip::testing::client_config(pki, {server.port()});
  auto created = Client::create(cfg);
  if (!created.ok()) die(created.error().to_string());
  auto& client = **created;
  auto key = SecretBytes::random(32);
  RegisterParams rp;
  rp.name = "bench-key";
  auto uid = client.register_object(rp, *key);
  if (!uid.ok()) die(uid.error().to_string());
  auto warm = client.get(*uid);
  if (!warm.ok() || !warm->material.equals(*key)) die("warm-up Get failed");

  auto get_or_die = [&](Client& c) {
    auto r = c.get(*uid);
    if (!r.ok()) die(r.error().to_string());
  };

  std::string script_path = pki.dir + "/pykmip_client_bench.py";
  std::ofstream(script_path) << kPythonClient;
  auto cfg_full = cfg;
  cfg_full.session_resumption = false;
  auto full_client = Client::create(cfg_full);
  if (!full_client.ok()) die(full_client.error().to_string());
  get_or_die(**full_client);

  // The machine is shared, so the cases run interleaved in rounds and each
  // result is total operations / total time over all rounds.
  const int rounds = 5;
  const int per_round = std::max(10, n / rounds);
  const int nc = std::max(6, per_round / 3);
  const int batches = std::max(1, per_round / 50);
  std::vector<std::string> fifty(50, *uid);
  Total ours, theirs, resumed, full, batch, trips;
  for (int r = 0; r < rounds; ++r) {
    // 1. Ours, persistent connection.
    ours.add(measure(per_round, [&] {
      for (int i = 0; i < per_round; ++i) get_or_die(client);
    }));
    // 2. PyKMIP's Python client, persistent connection, same server and key
    //    (it measures its own loop and CPU time, excluding start-up).
    auto py = storcrypt::testing::run({"/usr/bin/python3", script_path, "127.0.0.1", std::to_string(server.port()),
                                       pki.client_cert, pki.client_key, pki.ca, *uid, std::to_string(per_round)});
    if (py.exit_code != 0) die("python client failed: " + py.err);
    Measure m;
    std::istringstream(py.out) >> m.ops_per_s >> m.cpu_us_per_op;
    m.ops = per_round;
    theirs.add(m);
    // 3. New connection per Get: TLS session resumed, and full handshakes.
    resumed.add(measure(nc, [&] {
      for (int i = 0; i < nc; ++i) {
        client.close_idle_connections();
        get_or_die(client);
      }
    }));
    full.add(measure(nc, [&] {
      for (int i = 0; i < nc; ++i) {
        (*full_client)->close_idle_connections();
        get_or_die(**full_client);
      }
    }));
    // 4. 50 Gets in one batch vs 50 round trips.
    batch.add(measure(batches * 50, [&] {
      for (int b = 0; b < batches; ++b) {
        auto res = client.get_many(fifty);
        if (!res.ok()) die(res.error().to_string());
        for (auto& k : *res)
          if (!k.ok()) die(k.error().to_string());
      }
    }));
    trips.add(measure(batches * 50, [&] {
      for (int b = 0; b < batches; ++b)
        for (int i = 0; i < 50; ++i) get_or_die(client);
    }));
  }

  auto st = client.stats();
  std::printf(
      "KMIP Get benchmark against PyKMIP 0.10 on 127.0.0.1 (TLS 1.2, %d rounds, %d Gets per round and client)\n",
      rounds, per_round);
  std::printf("%-44s %10s %14s\n", "case", "Get/s", "client CPU/Get");
  auto row = [](const char* name, const Total& t) {
    Measure m = t.result();
    std::printf("%-44s %10.1f %11.1f us\n", name, m.ops_per_s, m.cpu_us_per_op);
  };
  row("storcrypt, persistent connection", ours);
  row("PyKMIP ProxyKmipClient, persistent", theirs);
  row("storcrypt, new connection (session resumed)", resumed);
  row("storcrypt, new connection (full handshake)", full);
  row("storcrypt, 50 Gets per batch (per Get)", batch);
  row("storcrypt, 50 round trips (per Get)", trips);
  std::printf("ratios:\n");
  std::printf("  Get/s ours / PyKMIP client              %6.2fx\n",
              ours.result().ops_per_s / theirs.result().ops_per_s);
  std::printf("  client CPU per Get PyKMIP / ours        %6.2fx\n",
              theirs.result().cpu_us_per_op / ours.result().cpu_us_per_op);
  std::printf("  persistent / new connection (resumed)   %6.2fx\n",
              ours.result().ops_per_s / resumed.result().ops_per_s);
  std::printf("  persistent / new connection (full)      %6.2fx\n", ours.result().ops_per_s / full.result().ops_per_s);
  std::printf("  resumed / full handshake                %6.2fx\n",
              resumed.result().ops_per_s / full.result().ops_per_s);
  std::printf("  batch of 50 / 50 round trips            %6.2fx\n",
              batch.result().ops_per_s / trips.result().ops_per_s);
  std::printf("TLS: %s %s\n", st.last_tls_version.c_str(), st.last_cipher.c_str());
  std::printf("client stats: connections=%llu resumed=%llu requests=%llu\n",
              static_cast<unsigned long long>(st.connections_opened),
              static_cast<unsigned long long>(st.sessions_resumed), static_cast<unsigned long long>(st.requests));
  return 0;
}
