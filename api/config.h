// Config: the settings of `tidemark serve`, read from a YAML file (flags override it).
//
//   storage: {path: ./data, retention: 15d, fsync: always,       # fsync: always | never
//             memory_budget: 256MiB, out_of_order_window: 0s, checkpoint_wal_size: 128MiB}
//   web:     {listen_address: "127.0.0.1:9201", allow_unauthenticated_remote: false,
//             max_request_bytes: 33554432}
//   query:   {timeout: 2m, max_samples: 50000000, lookback_delta: 5m}
//   auth:
//     tokens:
//       - {name: ci, sha256: <64 hex digits>, role: write, tenants: ["*"]}
//   otlp:    {translation_strategy: UnderscoreEscapingWithSuffixes,   # or ...WithoutSuffixes
//             promote_resource_attributes: [service.version, cloud.region],
//             promote_scope_metadata: true, export_created_metric: false,
//             convert_delta_to_cumulative: true, exponential_histogram_max_scale: 0}
//
// Every section and key is optional; unknown keys are errors (they are usually typos).
#ifndef TIDEMARK_API_CONFIG_H_
#define TIDEMARK_API_CONFIG_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "api/auth.h"
#include "ingest/otlp.h"
#include "storage/db.h"

namespace tidemark::api {

struct Config {
  std::string storage_path = "./data";
  int64_t retention_ms = 15LL * 24 * 3600 * 1000;
  SyncPolicy sync = SyncPolicy::kAlways;
  int64_t memory_budget_bytes = 256LL << 20;
  int64_t out_of_order_window_ms = 0;
  int64_t checkpoint_wal_bytes = 128LL << 20;

  std::string listen_address = "127.0.0.1:9201";
  bool allow_unauthenticated_remote = false;
  int64_t max_request_bytes = 32LL << 20;

  int64_t query_timeout_ms = 2 * 60 * 1000;
  int64_t query_max_samples = 50'000'000;
  int64_t lookback_delta_ms = 5 * 60 * 1000;

  AuthConfig auth;

  ingest::OtlpOptions otlp;
};

// Parses YAML text over the defaults. InvalidArgument naming the key on any error.
absl::StatusOr<Config> ParseConfig(std::string_view yaml);
// Reads and parses a file; NotFound when it cannot be read.
absl::StatusOr<Config> LoadConfigFile(const std::string& path);

// A byte size: a whole number of bytes, or with a unit B, KB, MB, GB (powers of 1000) or KiB,
// MiB, GiB (powers of 1024), e.g. "512MiB". InvalidArgument when malformed or not positive.
absl::StatusOr<int64_t> ParseByteSize(std::string_view text);
// The same, and "0" for zero (a size that turns something off).
absl::StatusOr<int64_t> ParseByteSizeOrZero(std::string_view text);

// "always" | "never".
absl::StatusOr<SyncPolicy> ParseSyncPolicy(std::string_view text);

// Splits "host:port" ("[::1]:9201" for IPv6). InvalidArgument when malformed.
absl::Status SplitHostPort(std::string_view address, std::string* host, int* port);
// True for 127.0.0.0/8, ::1 and "localhost".
bool IsLoopbackHost(std::string_view host);

}  // namespace tidemark::api

#endif  // TIDEMARK_API_CONFIG_H_
