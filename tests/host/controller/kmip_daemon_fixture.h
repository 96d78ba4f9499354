// Host tier: a storcryptd (storcrypt::testing::Daemon) next to the PyKMIP
// test PKI, the base of the KMIP daemon fixtures (kmip_cli_test.cpp,
// kmip_watch_host_test.cpp). SetUp requires PyKMIP (skipped locally, a
// failure in CI) and makes the PKI; sign() signs a node CSR with the openssl
// command.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "../kmip/pykmip_fixture.h"
#include "daemon_fixture.h"
#include "storcrypt/testing/environment.h"
#include "storcrypt/testing/process.h"

class KmipDaemonBase : public storcrypt::testing::Daemon {
 protected:
  void SetUp() override {
    Daemon::SetUp();
    std::string why;
    STORCRYPT_REQUIRE(storcrypt::kmip::testing::pykmip_available(why), why);
    std::string err;
    pki_ = storcrypt::kmip::testing::make_pki(err);
    ASSERT_TRUE(err.empty()) << err;
  }
  /// True when SetUp stopped early (skipped or failed): a derived SetUp returns then.
  bool stopped() const { return IsSkipped() || HasFatalFailure(); }

  /// `csr` signed by the PKI's CA `ca` (file prefix: "ca", "other-ca") with
  /// the extension text `ext`, valid for `days` (negative: already expired),
  /// written to `out`; returns `out`. Serials count up from serial_base_.
  std::string sign(const std::string& csr, const std::string& ca, const std::string& ext, const std::string& out,
                   int days = 2) {
    const std::string extf = out + ".ext";
    std::ofstream(extf) << ext;
    storcrypt::testing::ProcessResult r = storcrypt::testing::run(
        {"openssl", "x509", "-req", "-in", csr, "-CA", pki_.dir + "/" + ca + ".pem", "-CAkey",
         pki_.dir + "/" + ca + ".key", "-set_serial", std::to_string(serial_base_ + serial_++), "-days",
         std::to_string(days), "-out", out, "-extfile", extf});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return out;
  }

  storcrypt::kmip::testing::TestPki pki_;
  int serial_base_ = 100;
  int serial_ = 0;
};
