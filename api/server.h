// Server: Tidemark's HTTP face, the Prometheus HTTP API, remote write, health and /metrics.
//
//   api::Server server(options);
//   server.Start("127.0.0.1", 9201);   // answers /-/healthy at once, 503 on data paths
//   server.SetDB(db.get());            // ready: the DB is open and recovered
//   ...
//   server.Shutdown();                 // stop accepting, finish in-flight requests
//
// The DB must stay open until Shutdown returns. Thread-safe.
#ifndef TIDEMARK_API_SERVER_H_
#define TIDEMARK_API_SERVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "api/auth.h"
#include "ingest/otlp.h"
#include "ingest/remote_write.h"
#include "query/engine.h"
#include "storage/db.h"

namespace tidemark::api {

struct ServerOptions {
  AuthConfig auth;                          // no tokens: auth off
  int64_t max_request_bytes = 32LL << 20;   // larger bodies get 413
  ingest::WriteLimits write_limits;
  promql::EngineOptions engine;
  // Queries (query, query_range) evaluating at once; more wait in line, up to
  // `max_queued_queries`, for at most their timeout (503 timeout); beyond the line 503.
  int max_concurrent_queries = 20;
  int max_queued_queries = 64;
  // What /api/v1/status/flags shows: flag name (without dashes) -> value, as given.
  std::vector<std::pair<std::string, std::string>> flags;
  // What /api/v1/status/runtimeinfo shows as storageRetention, e.g. "15d".
  std::string storage_retention = "15d";
  // OTLP/HTTP metrics (/v1/metrics, /api/v1/otlp/v1/metrics): translation settings, and how
  // many OTLP requests may be in work at once (more get 429 with Retry-After).
  ingest::OtlpOptions otlp;
  int otlp_max_inflight_requests = 32;
  // Called on the request's thread after a query (query, query_range, failed or not) whose
  // evaluation took at least `large_query_seconds`, once the engine's working memory and
  // result are freed (the answer is written into the response). `tidemark serve` gives the
  // heap that the query freed back to the kernel there (tools/main.cc); the threshold keeps
  // that cost small next to the query's. Empty: nothing is called.
  std::function<void()> after_large_query;
  double large_query_seconds = 0.05;
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();  // Shuts down.
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds `host:port` (port 0 picks a free one) and serves on background threads.
  // Unavailable when the address cannot be bound.
  absl::Status Start(const std::string& host, int port);
  // The bound port (after Start).
  int port() const;

  // Serves data from `db` from now on (null: not ready again). /-/ready answers 200 once set.
  void SetDB(DB* db);

  // Stops accepting connections and returns once in-flight requests are finished. Idempotent.
  void Shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tidemark::api

#endif  // TIDEMARK_API_SERVER_H_
