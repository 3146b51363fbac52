#include "api/config.h"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <limits>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "api/params.h"

namespace tidemark::api {
namespace {

absl::Status CheckKeys(const YAML::Node& node, const std::string& where,
                       const std::set<std::string>& allowed) {
  if (!node.IsMap()) return absl::InvalidArgumentError(absl::StrCat(where, ": expected a mapping"));
  for (const auto& kv : node) {
    std::string key = kv.first.as<std::string>();
    if (!allowed.count(key)) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": unknown key \"", key, "\""));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> DurationKey(const YAML::Node& node, const std::string& where) {
  absl::StatusOr<int64_t> ms = ParseModelDuration(node.as<std::string>());
  if (!ms.ok()) return absl::InvalidArgumentError(absl::StrCat(where, ": ", ms.status().message()));
  return *ms;
}

absl::Status ParseOtlp(const YAML::Node& node, ingest::OtlpOptions& otlp) {
  if (auto s = CheckKeys(node, "otlp",
                         {"translation_strategy", "promote_resource_attributes",
                          "promote_scope_metadata", "export_created_metric",
                          "convert_delta_to_cumulative", "exponential_histogram_max_scale"});
      !s.ok()) {
    return s;
  }
  if (node["translation_strategy"]) {
    absl::StatusOr<ingest::OtlpTranslationStrategy> strategy =
        ingest::ParseOtlpTranslationStrategy(node["translation_strategy"].as<std::string>());
    if (!strategy.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("otlp.translation_strategy: ", strategy.status().message()));
    }
    otlp.translation_strategy = *strategy;
  }
  if (const YAML::Node list = node["promote_resource_attributes"]) {
    if (!list.IsSequence()) {
      return absl::InvalidArgumentError(
          "otlp.promote_resource_attributes: expected a list of attribute names");
    }
    otlp.promote_resource_attributes.clear();
    for (const auto& item : list) {
      std::string name = item.as<std::string>();
      if (name.empty()) {
        return absl::InvalidArgumentError("otlp.promote_resource_attributes: empty name");
      }
      otlp.promote_resource_attributes.push_back(std::move(name));
    }
  }
  if (node["promote_scope_metadata"]) {
    otlp.promote_scope_metadata = node["promote_scope_metadata"].as<bool>();
  }
  if (node["export_created_metric"]) {
    otlp.export_created_metric = node["export_created_metric"].as<bool>();
  }
  if (node["convert_delta_to_cumulative"]) {
    otlp.convert_delta_to_cumulative = node["convert_delta_to_cumulative"].as<bool>();
  }
  if (node["exponential_histogram_max_scale"]) {
    int scale = node["exponential_histogram_max_scale"].as<int>();
    if (scale < -4 || scale > 8) {
      return absl::InvalidArgumentError(
          "otlp.exponential_histogram_max_scale: must be in [-4, 8]");
    }
    otlp.exponential_histogram_max_scale = scale;
  }
  return absl::OkStatus();
}

absl::Status ParseInto(const YAML::Node& root, Config& config) {
  if (root.IsNull()) return absl::OkStatus();
  if (auto s = CheckKeys(root, "config", {"storage", "web", "query", "auth", "otlp"}); !s.ok()) {
    return s;
  }
  if (const YAML::Node storage = root["storage"]) {
    if (auto s = CheckKeys(storage, "storage", {"path", "retention", "fsync", "memory_budget",
                                                    "out_of_order_window", "checkpoint_wal_size"});
        !s.ok()) {
      return s;
    }
    if (storage["checkpoint_wal_size"]) {
      absl::StatusOr<int64_t> bytes =
          ParseByteSizeOrZero(storage["checkpoint_wal_size"].as<std::string>());
      if (!bytes.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("storage.checkpoint_wal_size: ", bytes.status().message()));
      }
      config.checkpoint_wal_bytes = *bytes;
    }
    if (storage["path"]) config.storage_path = storage["path"].as<std::string>();
    if (storage["retention"]) {
      absl::StatusOr<int64_t> ms = DurationKey(storage["retention"], "storage.retention");
      if (!ms.ok()) return ms.status();
      config.retention_ms = *ms;
    }
    if (storage["out_of_order_window"]) {
      absl::StatusOr<int64_t> ms =
          DurationKey(storage["out_of_order_window"], "storage.out_of_order_window");
      if (!ms.ok()) return ms.status();
      config.out_of_order_window_ms = *ms;
    }
    if (storage["memory_budget"]) {
      absl::StatusOr<int64_t> bytes = ParseByteSize(storage["memory_budget"].as<std::string>());
      if (!bytes.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("storage.memory_budget: ", bytes.status().message()));
      }
      config.memory_budget_bytes = *bytes;
    }
    if (storage["fsync"]) {
      absl::StatusOr<SyncPolicy> sync = ParseSyncPolicy(storage["fsync"].as<std::string>());
      if (!sync.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("storage.fsync: ", sync.status().message()));
      }
      config.sync = *sync;
    }
  }
  if (const YAML::Node web = root["web"]) {
    if (auto s = CheckKeys(web, "web",
                           {"listen_address", "allow_unauthenticated_remote", "max_request_bytes"});
        !s.ok()) {
      return s;
    }
    if (web["listen_address"]) config.listen_address = web["listen_address"].as<std::string>();
    if (web["allow_unauthenticated_remote"]) {
      config.allow_unauthenticated_remote = web["allow_unauthenticated_remote"].as<bool>();
    }
    if (web["max_request_bytes"]) config.max_request_bytes = web["max_request_bytes"].as<int64_t>();
    if (config.max_request_bytes <= 0) {
      return absl::InvalidArgumentError("web.max_request_bytes must be positive");
    }
  }
  if (const YAML::Node query = root["query"]) {
    if (auto s = CheckKeys(query, "query", {"timeout", "max_samples", "lookback_delta"}); !s.ok()) {
      return s;
    }
    if (query["timeout"]) {
      absl::StatusOr<int64_t> ms = DurationKey(query["timeout"], "query.timeout");
      if (!ms.ok()) return ms.status();
      config.query_timeout_ms = *ms;
    }
    if (query["lookback_delta"]) {
      absl::StatusOr<int64_t> ms = DurationKey(query["lookback_delta"], "query.lookback_delta");
      if (!ms.ok()) return ms.status();
      config.lookback_delta_ms = *ms;
    }
    if (query["max_samples"]) config.query_max_samples = query["max_samples"].as<int64_t>();
  }
  if (const YAML::Node otlp = root["otlp"]) {
    if (auto s = ParseOtlp(otlp, config.otlp); !s.ok()) return s;
  }
  if (const YAML::Node auth = root["auth"]) {
    if (auto s = CheckKeys(auth, "auth", {"tokens"}); !s.ok()) return s;
    const YAML::Node tokens = auth["tokens"];
    if (!tokens || !tokens.IsSequence() || tokens.size() == 0) {
      return absl::InvalidArgumentError("auth.tokens: expected a non-empty list of tokens");
    }
    for (size_t i = 0; i < tokens.size(); ++i) {
      const YAML::Node t = tokens[i];
      std::string where = absl::StrCat("auth.tokens[", i, "]");
      if (auto s = CheckKeys(t, where, {"name", "sha256", "role", "tenants"}); !s.ok()) return s;
      TokenConfig token;
      token.name = t["name"] ? t["name"].as<std::string>() : absl::StrCat("token", i);
      if (!t["sha256"]) return absl::InvalidArgumentError(absl::StrCat(where, ": sha256 missing"));
      absl::StatusOr<std::array<uint8_t, 32>> hash = ParseSha256Hex(t["sha256"].as<std::string>());
      if (!hash.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ".sha256: ", hash.status().message()));
      }
      token.sha256 = *hash;
      if (!t["role"]) return absl::InvalidArgumentError(absl::StrCat(where, ": role missing"));
      absl::StatusOr<Role> role = ParseRole(t["role"].as<std::string>());
      if (!role.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ".role: ", role.status().message()));
      }
      token.role = *role;
      const YAML::Node tenants = t["tenants"];
      if (!tenants || !tenants.IsSequence() || tenants.size() == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".tenants: expected a non-empty list (\"*\" for all)"));
      }
      for (const auto& tenant : tenants) {
        std::string name = tenant.as<std::string>();
        if (name != "*") {
          if (absl::Status s = ValidateTenant(name); !s.ok()) {
            return absl::InvalidArgumentError(absl::StrCat(where, ".tenants: ", s.message()));
          }
        }
        token.tenants.push_back(std::move(name));
      }
      config.auth.tokens.push_back(std::move(token));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<int64_t> ParseByteSizeOrZero(std::string_view text) {
  if (text == "0") return 0;
  return ParseByteSize(text);
}

absl::StatusOr<int64_t> ParseByteSize(std::string_view text) {
  static constexpr std::pair<std::string_view, int64_t> kUnits[] = {
      {"KiB", 1LL << 10}, {"MiB", 1LL << 20}, {"GiB", 1LL << 30}, {"KB", 1000},
      {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"B", 1}};
  std::string_view number = text;
  int64_t unit = 1;
  for (const auto& [suffix, factor] : kUnits) {
    if (number.size() > suffix.size() && number.ends_with(suffix)) {
      number.remove_suffix(suffix.size());
      unit = factor;
      break;
    }
  }
  int64_t n = 0;
  auto [end, err] = std::from_chars(number.data(), number.data() + number.size(), n);
  if (err != std::errc() || end != number.data() + number.size() || n <= 0 ||
      n > std::numeric_limits<int64_t>::max() / unit) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", std::string(text), "\" is not a byte size (e.g. 268435456, 512MiB, 2GB)"));
  }
  return n * unit;
}

absl::StatusOr<SyncPolicy> ParseSyncPolicy(std::string_view text) {
  if (text == "always") return SyncPolicy::kAlways;
  if (text == "never") return SyncPolicy::kNever;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown fsync policy \"", std::string(text), "\" (want always or never)"));
}

absl::StatusOr<Config> ParseConfig(std::string_view yaml) {
  Config config;
  try {
    YAML::Node root = YAML::Load(std::string(yaml));
    if (absl::Status s = ParseInto(root, config); !s.ok()) return s;
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("config: ", e.what()));
  }
  return config;
}

absl::StatusOr<Config> LoadConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read config file ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  absl::StatusOr<Config> config = ParseConfig(buffer.str());
  if (!config.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

absl::Status SplitHostPort(std::string_view address, std::string* host, int* port) {
  size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("address \"", std::string(address), "\": missing port"));
  }
  std::string_view h = address.substr(0, colon);
  std::string_view p = address.substr(colon + 1);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  int value = -1;
  auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
  if (p.empty() || ec != std::errc() || ptr != p.data() + p.size() || value < 0 || value > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("address \"", std::string(address), "\": invalid port"));
  }
  *host = h.empty() ? "0.0.0.0" : std::string(h);
  *port = value;
  return absl::OkStatus();
}

bool IsLoopbackHost(std::string_view host) {
  return host == "localhost" || host == "::1" || host.substr(0, 4) == "127.";
}

}  // namespace tidemark::api
