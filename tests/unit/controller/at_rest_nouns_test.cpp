// The volume noun through the dispatcher with the at-rest kernel seam
// (AtRestKernel) bound to in-memory fakes (storcrypt::dm_fake): what the daemon
// does above libcryptsetup and libblkid, without root or block devices. The
// real path is proven in the VM tier (vm.dm_volumes, vm.at_rest_unlock).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>

#include "node.h"
#include "storcrypt/controller/at_rest.h"
#include "storcrypt/testing/fake_crypt_backend.h"
#include "storcrypt/testing/fake_device_probe.h"
#include "temp_dir.h"

namespace storcrypt::controller::test {
namespace {

namespace fs = std::filesystem;

constexpr const char* kDev = "/dev/fake-sdb";

class AtRestNounsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(tmp.file("m1"));
    fs::create_directories(tmp.file("m2"));
    std::ofstream(tmp.file("at-rest.json")) << json{{"system_id", "node-a"},
                                                    {"media_dirs", {tmp.file("m1"), tmp.file("m2")}},
                                                    {"desired_copies", 2}}
                                                   .dump();
    backend->add_device(kDev);
    restart();
  }
  void restart() {
    node.reset();
    node = std::make_unique<Node>(tmp.path, false, [this](Context& ctx) {
      ctx.config_path = tmp.file("storcrypt.conf");  // at-rest.json sits beside it
      ctx.set_service(std::make_shared<AtRestKernel>(AtRestKernel{backend, probe}));
    });
  }
  std::size_t key_files() const {
    std::size_t n = 0;
    for (const char* m : {"m1", "m2"})
      for (const auto& e : fs::directory_iterator(tmp.file(m))) n += e.is_regular_file();
    return n;
  }

  TempDir tmp;
  std::shared_ptr<dm::FakeCryptBackend> backend = std::make_shared<dm::FakeCryptBackend>();
  std::shared_ptr<dm::FakeDeviceProbe> probe = std::make_shared<dm::FakeDeviceProbe>();
  std::unique_ptr<Node> node;
};

TEST_F(AtRestNounsTest, CreateOpenCloseThroughTheInjectedBackend) {
  json v = node->ok("volume.create", {{"device", kDev}, {"name", "vol1"}, {"key_id", "k1"}});
  EXPECT_EQ(v.value("name", ""), "vol1");
  EXPECT_EQ(backend->calls("format"), 1);
  ASSERT_TRUE(backend->devices().at(kDev).header.uuid.size() > 0);
  EXPECT_EQ(key_files(), 2u) << "one key copy per medium";

  node->ok("volume.open", {{"volume", "vol1"}});
  EXPECT_EQ(backend->mappings().count("vol1"), 1u);
  json list = node->ok("volume.list");
  ASSERT_EQ(list["volumes"].size(), 1u);
  EXPECT_EQ(list["volumes"][0].value("state", ""), "open");

  // A restarted daemon (new dispatcher, same database and fakes) still knows it.
  restart();
  node->ok("volume.close", {{"volume", "vol1"}});
  EXPECT_EQ(backend->mappings().count("vol1"), 0u);
  EXPECT_EQ(node->ok("volume.show", {{"volume", "vol1"}}).value("state", ""), "closed");
}

TEST_F(AtRestNounsTest, CreateRefusesASignatureUnlessForcedAndNeverADeviceInUse) {
  probe->sigs[kDev] = {dm::DeviceSignature{"ext4", "filesystem", "1.0", 1080}};
  auto r = node->call("volume.create", {{"device", kDev}, {"name", "vol1"}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("ext4"), std::string::npos) << r.error().to_string();
  EXPECT_EQ(backend->calls("format"), 0);
  EXPECT_EQ(key_files(), 0u) << "a refused create leaves no key copy";

  probe->users_of[kDev] = {"mounted at /srv/data"};
  r = node->call("volume.create", {{"device", kDev}, {"name", "vol1"}, {"force", true}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().to_string().find("mounted at /srv/data"), std::string::npos) << r.error().to_string();
  EXPECT_EQ(backend->calls("format"), 0);

  probe->users_of.clear();
  node->ok("volume.create", {{"device", kDev}, {"name", "vol1"}, {"force", true}});
  EXPECT_EQ(backend->calls("format"), 1);
}

TEST_F(AtRestNounsTest, EraseNeedsConfirmRefusesAnOpenVolumeThenDestroysKeysAndHeader) {
  node->ok("volume.create", {{"device", kDev}, {"name", "vol1"}, {"key_id", "k1"}});
  node->ok("volume.open", {{"volume", "vol1"}});
  EXPECT_FALSE(node->call("volume.erase", {{"volume", "vol1"}, {"confirm", false}}).ok());
  auto r = node->call("volume.erase", {{"volume", "vol1"}, {"confirm", true}});
  ASSERT_FALSE(r.ok()) << "an open volume is never erased";
  EXPECT_EQ(key_files(), 2u);

  node->ok("volume.close", {{"volume", "vol1"}});
  node->ok("volume.erase", {{"volume", "vol1"}, {"confirm", true}});
  EXPECT_TRUE(backend->devices().at(kDev).wiped);
  EXPECT_EQ(key_files(), 0u);
  EXPECT_EQ(node->ok("volume.list")["volumes"].size(), 0u);
}

}  // namespace
}  // namespace storcrypt::controller::test
