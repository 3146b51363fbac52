// Unit tests of the api/ pieces that need no server: parameters, formats, errors, auth, config.
#include <cmath>
#include <limits>

#include "absl/status/status.h"
#include "api/auth.h"
#include "api/config.h"
#include "api/errors.h"
#include "api/form.h"
#include "api/json.h"
#include "api/params.h"
#include "gtest/gtest.h"

namespace tidemark::api {
namespace {

TEST(FormTest, MergesBodyAndUrlBodyFirst) {
  Form form = Form::Parse("time=10&match[]=up&extra", "query=1%2B1&time=4&match%5B%5D=a+b");
  EXPECT_EQ(form.Value("query"), "1+1");
  EXPECT_EQ(form.Value("time"), "4");  // the body wins, as Go's FormValue
  EXPECT_EQ(form.Values("time"), (std::vector<std::string>{"4", "10"}));
  EXPECT_EQ(form.Values("match[]"), (std::vector<std::string>{"a b", "up"}));
  EXPECT_TRUE(form.Has("extra"));
  EXPECT_EQ(form.Value("extra"), "");
  EXPECT_FALSE(form.Has("missing"));
  EXPECT_EQ(form.Value("missing"), "");
}

TEST(FormTest, UrlOnlyAndMalformedEscapes) {
  Form form = Form::Parse("query=up%7Bjob%3D%22x%22%7D&bad=%zz%4", "");
  EXPECT_EQ(form.Value("query"), "up{job=\"x\"}");
  EXPECT_EQ(form.Value("bad"), "%zz%4");
}

TEST(FormTest, FormContentType) {
  EXPECT_TRUE(IsFormContentType("application/x-www-form-urlencoded"));
  EXPECT_TRUE(IsFormContentType("Application/X-WWW-Form-Urlencoded; charset=UTF-8"));
  EXPECT_FALSE(IsFormContentType("application/x-protobuf"));
  EXPECT_FALSE(IsFormContentType(""));
}

TEST(ParamsTest, TimeFromUnixSeconds) {
  EXPECT_EQ(*ParseTime("4"), 4000);
  EXPECT_EQ(*ParseTime("1700000000.123"), 1700000000123);
  EXPECT_EQ(*ParseTime("1700003600.1234"), 1700003600123);
  EXPECT_EQ(*ParseTime("1700003600.9996"), 1700003601000);
  EXPECT_EQ(*ParseTime("-1.5"), -1500);
  EXPECT_EQ(*ParseTime("1e3"), 1000000);
  EXPECT_EQ(*ParseTime("+2"), 2000);
}

TEST(ParamsTest, TimeFromRfc3339) {
  EXPECT_EQ(*ParseTime("2023-11-14T22:13:20Z"), 1700000000000);
  EXPECT_EQ(*ParseTime("2023-11-14T22:13:20.123Z"), 1700000000123);
  EXPECT_EQ(*ParseTime("2023-11-14T23:13:20.5+01:00"), 1700000000500);
  EXPECT_EQ(*ParseTime("2023-11-14T20:13:20-02:00"), 1700000000000);
  EXPECT_EQ(*ParseTime("-292273086-05-16T16:47:06Z"), kMinTimeMs);
  EXPECT_EQ(*ParseTime("292277025-08-18T07:12:54.999999999Z"), kMaxTimeMs);
}

TEST(ParamsTest, TimeErrors) {
  for (const char* bad : {"", "abc", "2023-11-14", "2023-11-14 22:13:20Z", "1.2.3", "0x10", "Inf",
                          "NaN", "1e400"}) {
    absl::StatusOr<int64_t> t = ParseTime(bad);
    EXPECT_FALSE(t.ok()) << bad;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(ParseTime("abc").status().message(), "cannot parse \"abc\" to a valid timestamp");
}

TEST(ParamsTest, DurationParam) {
  EXPECT_EQ(*ParseDurationParam("15s"), absl::Seconds(15));
  EXPECT_EQ(*ParseDurationParam("15"), absl::Seconds(15));
  EXPECT_EQ(*ParseDurationParam("0.5"), absl::Milliseconds(500));
  EXPECT_EQ(*ParseDurationParam("1m0s"), absl::Minutes(1));
  EXPECT_EQ(*ParseDurationParam("4m30s"), absl::Seconds(270));
  EXPECT_EQ(*ParseDurationParam("1h0m0s"), absl::Hours(1));
  EXPECT_EQ(*ParseDurationParam("-3"), absl::Seconds(-3));
  EXPECT_EQ(*ParseDurationParam("0"), absl::ZeroDuration());
  EXPECT_FALSE(ParseDurationParam("").ok());
  EXPECT_FALSE(ParseDurationParam("1.5m").ok());
  EXPECT_EQ(ParseDurationParam("x").status().message(), "cannot parse \"x\" to a valid duration");
  EXPECT_FALSE(ParseDurationParam("1e300").ok());
}

TEST(ParamsTest, ModelDuration) {
  EXPECT_EQ(*ParseModelDuration("15d"), 15LL * 24 * 3600 * 1000);
  EXPECT_EQ(*ParseModelDuration("1h30m"), 90LL * 60 * 1000);
  EXPECT_EQ(*ParseModelDuration("250ms"), 250);
  EXPECT_EQ(*ParseModelDuration("1y2w"), (365LL + 14) * 24 * 3600 * 1000);
  EXPECT_EQ(*ParseModelDuration("0"), 0);
  EXPECT_EQ(*ParseModelDuration("1s500ms"), 1500);
  for (const char* bad : {"", "5", "5m5h", "1h1h", "1x", "h", "-1s", "1.5h", "5s3"}) {
    EXPECT_FALSE(ParseModelDuration(bad).ok()) << bad;
  }
  EXPECT_FALSE(ParseModelDuration("99999999999999999y").ok());
}

TEST(ParamsTest, Limit) {
  EXPECT_EQ(*ParseLimit(""), 0);
  EXPECT_EQ(*ParseLimit("10"), 10);
  EXPECT_EQ(ParseLimit("0").status().message(), "limit must be positive");
  EXPECT_FALSE(ParseLimit("-1").ok());
  EXPECT_FALSE(ParseLimit("ten").ok());
  EXPECT_FALSE(ParseLimit("5x").ok());
}

TEST(JsonTest, ValuesAsPrometheusFormatsThem) {
  EXPECT_EQ(FormatValue(2), "2");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(-0.5), "-0.5");
  EXPECT_EQ(FormatValue(1.0 / 3), "0.3333333333333333");
  EXPECT_EQ(FormatValue(123456789.125), "123456789.125");
  EXPECT_EQ(FormatValue(1e20), "100000000000000000000");
  EXPECT_EQ(FormatValue(1e21), "1e+21");
  EXPECT_EQ(FormatValue(-1.5e22), "-1.5e+22");
  EXPECT_EQ(FormatValue(1e-6), "0.000001");
  EXPECT_EQ(FormatValue(1e-7), "1e-07");
  EXPECT_EQ(FormatValue(2.5e-300), "2.5e-300");
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::quiet_NaN()), "NaN");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::max()), "1.7976931348623157e+308");
}

TEST(JsonTest, Timestamps) {
  auto ts = [](int64_t ms) {
    std::string out;
    AppendTimestamp(out, ms);
    return out;
  };
  EXPECT_EQ(ts(4000), "4");
  EXPECT_EQ(ts(1700000000123), "1700000000.123");
  EXPECT_EQ(ts(1100), "1.100");
  EXPECT_EQ(ts(5), "0.005");
  EXPECT_EQ(ts(-1500), "-1.500");
  EXPECT_EQ(ts(0), "0");
}

TEST(JsonTest, StringsAndLabels) {
  std::string out;
  AppendJsonString(out, "a\"b\\c\n<&>\x01");
  EXPECT_EQ(out, R"("a\"b\\c\n\u003c\u0026\u003e\u0001")");
  out.clear();
  AppendLabels(out, Labels::FromUnsorted({{"job", "x"}, {"__name__", "up"}}));
  EXPECT_EQ(out, R"({"__name__":"up","job":"x"})");
}

TEST(JsonTest, QueryData) {
  std::string out;
  AppendQueryData(out, promql::Value(promql::Scalar{4000, 2}));
  EXPECT_EQ(SuccessEnvelope(out),
            R"({"status":"success","data":{"resultType":"scalar","result":[4,"2"]}})");

  promql::Vector vector;
  vector.push_back({Labels::FromUnsorted({{"a", "1"}}), 1500, std::numeric_limits<double>::infinity()});
  out.clear();
  AppendQueryData(out, promql::Value(vector));
  EXPECT_EQ(out, R"({"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1.500,"+Inf"]}]})");

  promql::Matrix matrix;
  matrix.push_back({Labels::FromUnsorted({{"b", "2"}}), {{1000, 1}, {2000, 0.25}}});
  out.clear();
  AppendQueryData(out, promql::Value(matrix));
  EXPECT_EQ(out,
            R"({"resultType":"matrix","result":[{"metric":{"b":"2"},"values":[[1,"1"],[2,"0.25"]]}]})");

  out.clear();
  AppendQueryData(out, promql::Value(promql::Vector{}));
  EXPECT_EQ(out, R"({"resultType":"vector","result":[]})");

  out.clear();
  AppendQueryData(out, promql::Value(promql::String{3000, "hi"}));
  EXPECT_EQ(out, R"({"resultType":"string","result":[3,"hi"]})");
}

TEST(JsonTest, Envelopes) {
  EXPECT_EQ(SuccessEnvelope("[]", {"w1"}), R"({"status":"success","data":[],"warnings":["w1"]})");
  EXPECT_EQ(ErrorEnvelope("bad_data", "oops \"x\""),
            R"({"status":"error","errorType":"bad_data","error":"oops \"x\""})");
}

TEST(ErrorsTest, MapsEveryCodeOnce) {
  struct Case {
    absl::Status status;
    int code;
    std::string_view type;
  };
  const Case cases[] = {
      {absl::InvalidArgumentError(""), 400, "bad_data"},
      {absl::UnimplementedError(""), 422, "execution"},
      {absl::FailedPreconditionError(""), 422, "execution"},
      {absl::ResourceExhaustedError(""), 422, "execution"},
      {absl::DeadlineExceededError(""), 503, "timeout"},
      {absl::CancelledError(""), 499, "canceled"},
      {absl::NotFoundError(""), 404, "not_found"},
      {absl::InternalError(""), 500, "internal"},
      {absl::DataLossError(""), 500, "internal"},
  };
  for (const Case& c : cases) {
    HttpError e = MapStatus(c.status);
    EXPECT_EQ(e.code, c.code) << c.status;
    EXPECT_EQ(e.type, c.type) << c.status;
  }
}

TEST(AuthTest, Sha256) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_TRUE(ParseSha256Hex(Sha256Hex("x")).ok());
  EXPECT_FALSE(ParseSha256Hex("abc").ok());
  EXPECT_FALSE(ParseSha256Hex(std::string(64, 'g')).ok());
}

AuthConfig TwoTokens() {
  AuthConfig config;
  config.tokens.push_back({"writer", *ParseSha256Hex(Sha256Hex("w-secret")), Role::kWrite, {"a"}});
  config.tokens.push_back({"reader", *ParseSha256Hex(Sha256Hex("r-secret")), Role::kRead, {"a", "b"}});
  config.tokens.push_back({"root", *ParseSha256Hex(Sha256Hex("admin-secret")), Role::kAdmin, {"*"}});
  return config;
}

TEST(AuthTest, OffAllowsEverything) {
  Authenticator auth;
  EXPECT_FALSE(auth.enabled());
  EXPECT_EQ(auth.Check("", Permission::kWrite, "anything").code, 0);
}

TEST(AuthTest, TokensRolesAndTenants) {
  Authenticator auth(TwoTokens());
  ASSERT_TRUE(auth.enabled());
  EXPECT_EQ(auth.Check("", Permission::kRead, "a").code, 401);
  EXPECT_EQ(auth.Check("Basic dXNlcjpwdw==", Permission::kRead, "a").code, 401);
  EXPECT_EQ(auth.Check("Bearer wrong", Permission::kRead, "a").code, 401);
  EXPECT_EQ(auth.Check("Bearer ", Permission::kRead, "a").code, 401);
  EXPECT_EQ(auth.Check("Bearer w-secret", Permission::kWrite, "a").code, 0);
  EXPECT_EQ(auth.Check("bearer w-secret", Permission::kWrite, "a").code, 0);
  EXPECT_EQ(auth.Check("Bearer w-secret", Permission::kRead, "a").code, 403);
  EXPECT_EQ(auth.Check("Bearer w-secret", Permission::kWrite, "b").code, 403);
  EXPECT_EQ(auth.Check("Bearer r-secret", Permission::kRead, "b").code, 0);
  EXPECT_EQ(auth.Check("Bearer r-secret", Permission::kWrite, "b").code, 403);
  EXPECT_EQ(auth.Check("Bearer r-secret", Permission::kRead, "c").code, 403);
  EXPECT_EQ(auth.Check("Bearer admin-secret", Permission::kWrite, "zzz").code, 0);
  EXPECT_EQ(auth.Check("Bearer admin-secret", Permission::kRead, "anonymous").code, 0);
  AuthDecision d = auth.Check("Bearer r-secret", Permission::kRead, "c");
  EXPECT_EQ(d.token_name, "reader");
  EXPECT_NE(d.message.find("tenant \"c\""), std::string::npos) << d.message;
}

TEST(AuthTest, TenantValidation) {
  EXPECT_TRUE(ValidateTenant("team-a_1.prod").ok());
  EXPECT_TRUE(ValidateTenant(std::string(150, 'x')).ok());
  EXPECT_FALSE(ValidateTenant(std::string(151, 'x')).ok());
  EXPECT_FALSE(ValidateTenant("").ok());
  EXPECT_FALSE(ValidateTenant("a/b").ok());
  EXPECT_FALSE(ValidateTenant("a b").ok());
  EXPECT_FALSE(ValidateTenant("a\x01").ok());
  EXPECT_FALSE(ValidateTenant("..").ok());
  EXPECT_FALSE(ValidateTenant("caf\xc3\xa9").ok());
}

TEST(ConfigTest, ParsesEverySection) {
  std::string hash = Sha256Hex("t");
  absl::StatusOr<Config> config = ParseConfig(R"(
storage:
  path: /tmp/x
  retention: 30d
  fsync: never
web:
  listen_address: 0.0.0.0:9999
  allow_unauthenticated_remote: true
  max_request_bytes: 1000
query:
  timeout: 30s
  max_samples: 1000
  lookback_delta: 1m
auth:
  tokens:
    - name: ci
      sha256: )" + hash + R"(
      role: write
      tenants: [a, b]
    - {name: all, sha256: )" + hash + R"(, role: admin, tenants: ["*"]}
)");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->storage_path, "/tmp/x");
  EXPECT_EQ(config->retention_ms, 30LL * 24 * 3600 * 1000);
  EXPECT_EQ(config->sync, SyncPolicy::kNever);
  EXPECT_EQ(config->listen_address, "0.0.0.0:9999");
  EXPECT_TRUE(config->allow_unauthenticated_remote);
  EXPECT_EQ(config->max_request_bytes, 1000);
  EXPECT_EQ(config->query_timeout_ms, 30000);
  EXPECT_EQ(config->query_max_samples, 1000);
  EXPECT_EQ(config->lookback_delta_ms, 60000);
  ASSERT_EQ(config->auth.tokens.size(), 2u);
  EXPECT_EQ(config->auth.tokens[0].name, "ci");
  EXPECT_EQ(config->auth.tokens[0].role, Role::kWrite);
  EXPECT_EQ(config->auth.tokens[0].tenants, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(config->auth.tokens[1].role, Role::kAdmin);
  Authenticator auth(config->auth);
  EXPECT_EQ(auth.Check("Bearer t", Permission::kRead, "q").code, 0);
}

TEST(ConfigTest, MemoryBudgetAndByteSizes) {
  EXPECT_EQ(ParseConfig("")->memory_budget_bytes, 256LL << 20);
  absl::StatusOr<Config> config = ParseConfig("storage: {memory_budget: 1GiB}");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->memory_budget_bytes, 1LL << 30);
  EXPECT_EQ(*ParseByteSize("268435456"), 268435456);
  EXPECT_EQ(*ParseByteSize("512MiB"), 512LL << 20);
  EXPECT_EQ(*ParseByteSize("2GB"), 2'000'000'000);
  EXPECT_EQ(*ParseByteSize("10KB"), 10'000);
  EXPECT_EQ(*ParseByteSize("7B"), 7);
  for (const char* bad : {"", "MiB", "0", "-5MiB", "1.5GiB", "12 MiB", "9999999999999GiB", "x"}) {
    EXPECT_FALSE(ParseByteSize(bad).ok()) << bad;
  }
  EXPECT_FALSE(ParseConfig("storage: {memory_budget: lots}").ok());
}

TEST(ConfigTest, CheckpointWalSize) {
  EXPECT_EQ(ParseConfig("")->checkpoint_wal_bytes, 128LL << 20);
  EXPECT_EQ(ParseConfig("storage: {checkpoint_wal_size: 64MiB}")->checkpoint_wal_bytes, 64LL << 20);
  EXPECT_EQ(ParseConfig("storage: {checkpoint_wal_size: 0}")->checkpoint_wal_bytes, 0);
  absl::StatusOr<Config> bad = ParseConfig("storage: {checkpoint_wal_size: -1MiB}");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("storage.checkpoint_wal_size"), std::string_view::npos);
}

TEST(ConfigTest, OutOfOrderWindow) {
  EXPECT_EQ(ParseConfig("")->out_of_order_window_ms, 0);
  absl::StatusOr<Config> config = ParseConfig("storage: {out_of_order_window: 10m}");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->out_of_order_window_ms, 600000);
  config = ParseConfig("storage: {out_of_order_window: soon}");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("storage.out_of_order_window"), std::string::npos);
}

TEST(ConfigTest, DefaultsAndErrors) {
  absl::StatusOr<Config> empty = ParseConfig("");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->storage_path, "./data");
  EXPECT_EQ(empty->listen_address, "127.0.0.1:9201");
  EXPECT_EQ(empty->sync, SyncPolicy::kAlways);
  EXPECT_TRUE(empty->auth.tokens.empty());

  EXPECT_FALSE(ParseConfig("storage: {pth: x}").ok());
  EXPECT_FALSE(ParseConfig("storage: {retention: 15x}").ok());
  EXPECT_FALSE(ParseConfig("storage: {fsync: sometimes}").ok());
  EXPECT_FALSE(ParseConfig("auth: {tokens: []}").ok());
  EXPECT_FALSE(ParseConfig("auth: {tokens: [{sha256: abc, role: read, tenants: [a]}]}").ok());
  EXPECT_FALSE(ParseConfig("auth: {tokens: [{sha256: " + Sha256Hex("t") + ", role: god, tenants: [a]}]}").ok());
  EXPECT_FALSE(ParseConfig("auth: {tokens: [{sha256: " + Sha256Hex("t") + ", role: read}]}").ok());
  EXPECT_FALSE(ParseConfig("web: {max_request_bytes: lots}").ok());
  EXPECT_FALSE(ParseConfig("[unbalanced").ok());
  absl::StatusOr<Config> typo = ParseConfig("wbe: {}");
  EXPECT_NE(typo.status().message().find("wbe"), absl::string_view::npos);
}

TEST(ConfigTest, Addresses) {
  std::string host;
  int port = 0;
  ASSERT_TRUE(SplitHostPort("127.0.0.1:9201", &host, &port).ok());
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 9201);
  ASSERT_TRUE(SplitHostPort("[::1]:80", &host, &port).ok());
  EXPECT_EQ(host, "::1");
  ASSERT_TRUE(SplitHostPort(":9201", &host, &port).ok());
  EXPECT_EQ(host, "0.0.0.0");
  EXPECT_FALSE(SplitHostPort("localhost", &host, &port).ok());
  EXPECT_FALSE(SplitHostPort("h:99999", &host, &port).ok());
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("::1"));
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_FALSE(IsLoopbackHost("0.0.0.0"));
  EXPECT_FALSE(IsLoopbackHost("10.0.0.1"));
}

}  // namespace
}  // namespace tidemark::api
