#include "storcrypt/controller/dispatcher.h"

#include <gtest/gtest.h>

#include "storcrypt/controller/rpc.h"
#include "storcrypt/controller/server.h"

namespace storcrypt::controller {
namespace {

using nlohmann::json;

class DispatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(d.add({"demo.echo",
                       "echo",
                       {{"text", ParamType::kString, true, "what to echo"},
                        {"times", ParamType::kInteger, false, "repeat count"},
                        {"loud", ParamType::kBoolean, false, ""}},
                       false,
                       [](const Params& p) -> Result<json> {
                         std::string out;
                         for (int64_t i = 0; i < p.integer("times", 1); ++i) out += p.str("text");
                         if (p.boolean("loud")) out += "!";
                         return json{{"text", out}, {"uid", p.peer().uid}};
                       }})
                    .ok());
    ASSERT_TRUE(d.add({"demo.fail",
                       "fail",
                       {},
                       true,
                       [](const Params&) -> Result<json> {
                         return Error(ErrorCode::kConflict, "key provider is active", "deactivate it first",
                                      "xKeyProviderActive");
                       }})
                    .ok());
    ASSERT_TRUE(
        d.add({"demo.throw", "throws", {}, false, [](const Params&) -> Result<json> { return json::parse("{bad"); }})
            .ok());
  }
  json handle(const std::string& text) {
    std::string out = d.handle_text(text, PeerInfo{1000, 1000, 42});
    return out.empty() ? json() : json::parse(out);
  }
  Dispatcher d;
};

TEST_F(DispatcherTest, Success) {
  json r = handle(R"({"jsonrpc":"2.0","id":7,"method":"demo.echo","params":{"text":"ab","times":2,"loud":true}})");
  EXPECT_EQ(r["id"], 7);
  EXPECT_EQ(r["jsonrpc"], "2.0");
  EXPECT_EQ(r["result"]["text"], "abab!");
  EXPECT_EQ(r["result"]["uid"], 1000);
}

TEST_F(DispatcherTest, StringIdEchoed) {
  json r = handle(R"({"jsonrpc":"2.0","id":"x-1","method":"demo.echo","params":{"text":"a"}})");
  EXPECT_EQ(r["id"], "x-1");
}

TEST_F(DispatcherTest, NotificationGetsNoResponse) {
  EXPECT_TRUE(d.handle_text(R"({"jsonrpc":"2.0","method":"demo.echo","params":{"text":"a"}})").empty());
}

struct ErrCase {
  const char* request;
  int code;
  const char* name;
  const char* message_part;
};

class DispatcherErrors : public DispatcherTest, public ::testing::WithParamInterface<ErrCase> {};

TEST_P(DispatcherErrors, StructuredError) {
  json r = handle(GetParam().request);
  ASSERT_TRUE(r.contains("error")) << r.dump();
  EXPECT_EQ(r["error"]["code"], GetParam().code) << r.dump();
  EXPECT_EQ(r["error"]["data"]["name"], GetParam().name) << r.dump();
  EXPECT_NE(r["error"]["message"].get<std::string>().find(GetParam().message_part), std::string::npos) << r.dump();
  EXPECT_FALSE(r.contains("result"));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, DispatcherErrors,
    ::testing::Values(
        ErrCase{"{not json", rpc::kParseError, "xParseError", "not valid JSON"},
        ErrCase{"[1,2]", rpc::kInvalidRequest, "xInvalidRequest", "batch"},
        ErrCase{"42", rpc::kInvalidRequest, "xInvalidRequest", "JSON object"},
        ErrCase{R"({"id":1,"method":"demo.echo"})", rpc::kInvalidRequest, "xInvalidRequest", "jsonrpc"},
        ErrCase{R"({"jsonrpc":"1.0","id":1,"method":"demo.echo"})", rpc::kInvalidRequest, "xInvalidRequest", "jsonrpc"},
        ErrCase{R"({"jsonrpc":"2.0","id":1})", rpc::kInvalidRequest, "xInvalidRequest", "method"},
        ErrCase{R"({"jsonrpc":"2.0","id":1,"method":7})", rpc::kInvalidRequest, "xInvalidRequest", "method"},
        ErrCase{R"({"jsonrpc":"2.0","id":{"a":1},"method":"demo.echo"})", rpc::kInvalidRequest, "xInvalidRequest",
                "id"},
        ErrCase{R"({"jsonrpc":"2.0","id":1,"method":"demo.echo","params":"x"})", rpc::kInvalidRequest,
                "xInvalidRequest", "params"},
        ErrCase{R"({"jsonrpc":"2.0","id":1,"method":"demo.echo","extra":1})", rpc::kInvalidRequest, "xInvalidRequest",
                "extra"},
        ErrCase{R"({"jsonrpc":"2.0","id":1,"method":"demo.echo","params":["a"]})", rpc::kInvalidParams, "xInvalidInput",
                "positional"},
        ErrCase{R"({"jsonrpc":"2.0","id":1,"method":"nope.nope"})", rpc::kMethodNotFound, "xMethodNotFound",
                "nope.nope"},
        ErrCase{R"({"jsonrpc":"2.0","id":1,"method":"demo.echo","params":{}})", rpc::kInvalidParams,
                "xMissingParameter", "'text'"},
        ErrCase{R"({"jsonrpc":"2.0","id":1,"method":"demo.echo","params":{"text":5}})", rpc::kInvalidParams,
                "xInvalidParameter", "'text' of 'demo.echo' must be string, got number"},
        ErrCase{R"({"jsonrpc":"2.0","id":1,"method":"demo.echo","params":{"text":"a","times":1.5}})",
                rpc::kInvalidParams, "xInvalidParameter", "'times'"},
        ErrCase{R"({"jsonrpc":"2.0","id":1,"method":"demo.echo","params":{"text":"a","colour":"red"}})",
                rpc::kInvalidParams, "xUnknownParameter", "'colour'"},
        ErrCase{R"({"jsonrpc":"2.0","id":1,"method":"demo.fail"})", -32002, "xKeyProviderActive",
                "key provider is active"},
        ErrCase{R"({"jsonrpc":"2.0","id":1,"method":"demo.throw"})", rpc::kInternalError, "xInternalError",
                "failed unexpectedly"}));

TEST_F(DispatcherTest, ErrorCarriesFixCategoryAndExitCode) {
  json r = handle(R"({"jsonrpc":"2.0","id":1,"method":"demo.fail"})");
  EXPECT_EQ(r["error"]["data"]["fix"], "deactivate it first");
  EXPECT_EQ(r["error"]["data"]["category"], "conflict");
  EXPECT_EQ(r["error"]["data"]["exit_code"], 4);
}

TEST_F(DispatcherTest, ParseErrorHasNullIdAndInvalidRequestKeepsId) {
  EXPECT_TRUE(handle("{x")["id"].is_null());
  EXPECT_EQ(handle(R"({"jsonrpc":"2.0","id":9})")["id"], 9);
}

TEST_F(DispatcherTest, RegistrationRules) {
  auto h = [](const Params&) -> Result<json> { return json(); };
  EXPECT_EQ(d.add({"demo.echo", "", {}, false, h}).error().code(), ErrorCode::kConflict);
  EXPECT_FALSE(d.add({"nodot", "", {}, false, h}).ok());
  EXPECT_FALSE(d.add({"Bad.Case", "", {}, false, h}).ok());
  EXPECT_FALSE(d.add({"a.", "", {}, false, h}).ok());
  EXPECT_FALSE(d.add({"a.b", "", {}, false, nullptr}).ok());
  // Element API names: CamelCase without a dot.
  EXPECT_TRUE(d.add({"EnableEncryptionAtRest", "", {}, false, h}).ok());
  EXPECT_FALSE(d.add({"Enable_Encryption", "", {}, false, h}).ok());
  EXPECT_FALSE(d.add({"Enable.AtRest", "", {}, false, h}).ok());
}

TEST_F(DispatcherTest, DiscoverListsMethods) {
  json r = handle(R"({"jsonrpc":"2.0","id":1,"method":"rpc.discover"})");
  bool found = false;
  for (const auto& m : r["result"]["methods"]) {
    if (m["method"] == "demo.echo") {
      found = true;
      EXPECT_EQ(m["params"][0]["name"], "text");
      EXPECT_EQ(m["params"][0]["required"], true);
    }
  }
  EXPECT_TRUE(found);
}

TEST(RpcErrorMapping, EveryCategoryRoundTrips) {
  for (auto c : {ErrorCode::kInvalidInput, ErrorCode::kNotFound, ErrorCode::kConflict, ErrorCode::kUnavailable,
                 ErrorCode::kPermission, ErrorCode::kKernel, ErrorCode::kTls, ErrorCode::kProtocol,
                 ErrorCode::kUnsupported, ErrorCode::kInternal}) {
    Error e(c, "msg", "fixit", "xName");
    json obj = rpc::error_object(e);
    EXPECT_EQ(obj["data"]["exit_code"], category_exit_code(c));
    Error back = rpc::error_from_object(obj);
    EXPECT_EQ(back.code(), c);
    EXPECT_EQ(back.name(), "xName");
    EXPECT_EQ(back.fix(), "fixit");
    EXPECT_EQ(back.message(), "msg");
    // Without data, the numeric code alone still gives the category.
    obj.erase("data");
    EXPECT_EQ(rpc::error_from_object(obj).code(), c) << obj.dump();
  }
  EXPECT_EQ(rpc::error_from_object(json{{"code", rpc::kMethodNotFound}, {"message", "x"}}).code(),
            ErrorCode::kUnsupported);
  EXPECT_EQ(rpc::error_from_object(json("garbage")).code(), ErrorCode::kProtocol);
}

TEST(PeerAccess, RootSelfAndGroupMembersOnly) {
  const gid_t grp = 995;
  EXPECT_TRUE(peer_allowed(0, 0, {}, 0, grp));
  EXPECT_TRUE(peer_allowed(1000, 1000, {}, 1000, grp));           // the daemon's own user
  EXPECT_TRUE(peer_allowed(1001, grp, {}, 0, grp));               // primary group
  EXPECT_TRUE(peer_allowed(1001, 1001, {27, grp}, 0, grp));       // supplementary group
  EXPECT_FALSE(peer_allowed(1001, 1001, {27, 100}, 0, grp));      // other groups
  EXPECT_FALSE(peer_allowed(65534, 65534, {}, 0, grp));           // nobody
  EXPECT_FALSE(peer_allowed(1001, 995, {995}, 0, std::nullopt));  // no group configured
}

}  // namespace
}  // namespace storcrypt::controller
