// tidemark: the command-line entry point. `tidemark serve` runs the server; `tidemark version`
// prints the build; `tidemark hash-token` turns a token on stdin into the SHA-256 hex that the
// config's auth section stores.
#include <malloc.h>
#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "api/auth.h"
#include "api/config.h"
#include "api/log.h"
#include "api/metrics.h"
#include "api/params.h"
#include "api/server.h"
#include "cli/commands.h"
#include "query/parser.h"
#include "storage/db.h"

namespace tidemark {
namespace {

struct ServeFlags {
  std::string config_file;
  std::string storage_path;
  std::string listen_address;
  std::string retention;
  std::string fsync;
  std::string memory_budget;
  std::string checkpoint_wal_size;
  std::string maintenance_interval;
  std::string out_of_order_window;
  std::string query_timeout;
  std::string lookback_delta;
  int64_t max_samples = 0;
  int max_concurrency = 20;
  bool allow_unauthenticated_remote = false;
};

// Gives the heap that queries freed back to the kernel (malloc_trim), on a thread of its own so
// that no request waits for it. Trim() asks for one pass; asks that come while a pass is due or
// running are folded into the next one.
class HeapTrimmer {
 public:
  HeapTrimmer() : thread_([this] { Run(); }) {}
  ~HeapTrimmer() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  void Trim() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      due_ = true;
    }
    cv_.notify_one();
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait(lock, [this] { return due_ || stop_; });
      if (stop_) return;
      due_ = false;
      lock.unlock();
      malloc_trim(0);
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  bool due_ = false;
  bool stop_ = false;
  std::thread thread_;
};

// Periodic storage work: compaction (sealing, WAL release, head checkpoint) every
// `interval_ms` (30 s by default), retention every ~hour.
class Maintenance {
 public:
  Maintenance(DB* db, int64_t retention_ms, int64_t interval_ms)
      : db_(db), retention_ms_(retention_ms), interval_ms_(interval_ms) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Maintenance() { Stop(); }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Run() {
    auto next_retention = std::chrono::steady_clock::now() + std::chrono::minutes(1);
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::milliseconds(interval_ms_),
                         [this] { return stop_; })) {
      lock.unlock();
      if (absl::Status s = db_->Compact(); !s.ok()) LogError(absl::StrCat("compaction: ", s.ToString()));
      if (retention_ms_ > 0 && std::chrono::steady_clock::now() >= next_retention) {
        int64_t cutoff = absl::ToUnixMillis(absl::Now()) - retention_ms_;
        if (absl::Status s = db_->DeleteBefore(cutoff); !s.ok()) {
          LogError(absl::StrCat("retention: ", s.ToString()));
        }
        next_retention = std::chrono::steady_clock::now() + std::chrono::hours(1);
      }
      lock.lock();
    }
  }

  DB* db_;
  int64_t retention_ms_;
  int64_t interval_ms_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

int Fail(std::string_view message) {
  LogError(message);
  return 1;
}

int Serve(const ServeFlags& flags, const CLI::App& cmd) {
  api::Config config;
  if (!flags.config_file.empty()) {
    absl::StatusOr<api::Config> loaded = api::LoadConfigFile(flags.config_file);
    if (!loaded.ok()) return Fail(std::string(loaded.status().message()));
    config = std::move(*loaded);
  }
  auto given = [&cmd](const char* name) { return cmd.get_option(name)->count() > 0; };
  if (given("--storage.path")) config.storage_path = flags.storage_path;
  if (given("--web.listen-address")) config.listen_address = flags.listen_address;
  if (given("--web.allow-unauthenticated-remote")) {
    config.allow_unauthenticated_remote = flags.allow_unauthenticated_remote;
  }
  if (given("--storage.retention")) {
    absl::StatusOr<int64_t> ms = api::ParseModelDuration(flags.retention);
    if (!ms.ok()) return Fail(absl::StrCat("--storage.retention: ", ms.status().message()));
    config.retention_ms = *ms;
  }
  if (given("--storage.out-of-order-window")) {
    absl::StatusOr<int64_t> ms = api::ParseModelDuration(flags.out_of_order_window);
    if (!ms.ok()) {
      return Fail(absl::StrCat("--storage.out-of-order-window: ", ms.status().message()));
    }
    config.out_of_order_window_ms = *ms;
  }
  if (given("--storage.fsync")) {
    absl::StatusOr<SyncPolicy> sync = api::ParseSyncPolicy(flags.fsync);
    if (!sync.ok()) return Fail(absl::StrCat("--storage.fsync: ", sync.status().message()));
    config.sync = *sync;
  }
  if (given("--storage.memory-budget")) {
    absl::StatusOr<int64_t> bytes = api::ParseByteSize(flags.memory_budget);
    if (!bytes.ok()) return Fail(absl::StrCat("--storage.memory-budget: ", bytes.status().message()));
    config.memory_budget_bytes = *bytes;
  }
  if (given("--storage.checkpoint-wal-size")) {
    absl::StatusOr<int64_t> bytes = api::ParseByteSizeOrZero(flags.checkpoint_wal_size);
    if (!bytes.ok()) {
      return Fail(absl::StrCat("--storage.checkpoint-wal-size: ", bytes.status().message()));
    }
    config.checkpoint_wal_bytes = *bytes;
  }
  int64_t maintenance_interval_ms = 30'000;
  if (given("--storage.maintenance-interval")) {
    absl::StatusOr<int64_t> ms = api::ParseModelDuration(flags.maintenance_interval);
    if (!ms.ok() || *ms <= 0) {
      return Fail(absl::StrCat("--storage.maintenance-interval: ",
                               ms.ok() ? "must be positive" : ms.status().message()));
    }
    maintenance_interval_ms = *ms;
  }
  if (given("--query.timeout")) {
    absl::StatusOr<int64_t> ms = api::ParseModelDuration(flags.query_timeout);
    if (!ms.ok()) return Fail(absl::StrCat("--query.timeout: ", ms.status().message()));
    config.query_timeout_ms = *ms;
  }
  if (given("--query.lookback-delta")) {
    absl::StatusOr<int64_t> ms = api::ParseModelDuration(flags.lookback_delta);
    if (!ms.ok()) return Fail(absl::StrCat("--query.lookback-delta: ", ms.status().message()));
    config.lookback_delta_ms = *ms;
  }
  if (given("--query.max-samples")) config.query_max_samples = flags.max_samples;

  std::string host;
  int port = 0;
  if (absl::Status s = api::SplitHostPort(config.listen_address, &host, &port); !s.ok()) {
    return Fail(std::string(s.message()));
  }
  bool auth_on = !config.auth.tokens.empty();
  if (!auth_on && !api::IsLoopbackHost(host) && !config.allow_unauthenticated_remote) {
    return Fail(absl::StrCat("refusing to listen on ", config.listen_address,
                             " without authentication: configure auth tokens, listen on "
                             "loopback, or pass --web.allow-unauthenticated-remote"));
  }

  // SIGTERM/SIGINT are taken by sigwait below; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  api::ServerOptions options;
  options.auth = config.auth;
  options.max_request_bytes = config.max_request_bytes;
  options.engine.lookback_delta_ms = config.lookback_delta_ms;
  options.otlp = config.otlp;
  options.otlp.lookback_delta_ms = config.lookback_delta_ms;  // target_info spacing
  options.engine.max_samples = config.query_max_samples;
  options.engine.default_timeout = absl::Milliseconds(config.query_timeout_ms);
  if (flags.max_concurrency < 1) return Fail("--query.max-concurrency must be at least 1");
  options.max_concurrent_queries = flags.max_concurrency;
  // A query frees what it allocated, but glibc keeps freed chunks that lie below live ones
  // (cached blocks, the head's growth, another arena's leftovers), so each large query left
  // RSS higher for good: at 1 M series, 665 MiB after ingest became 1,071 MiB after three
  // dashboard queries with 135 MB in use. malloc_trim returns those free pages (MADV_DONTNEED);
  // the next query faults them in again (bench/RESULTS.md, "Query memory given back").
  HeapTrimmer trimmer;
  options.after_large_query = [&trimmer] { trimmer.Trim(); };
  options.storage_retention = promql::FormatDuration(config.retention_ms);
  options.flags = {
      {"config.file", flags.config_file},
      {"storage.path", config.storage_path},
      {"storage.retention", options.storage_retention},
      {"storage.fsync", config.sync == SyncPolicy::kAlways ? "always" : "never"},
      {"storage.memory-budget", std::to_string(config.memory_budget_bytes)},
      {"storage.checkpoint-wal-size", std::to_string(config.checkpoint_wal_bytes)},
      {"storage.out-of-order-window", promql::FormatDuration(config.out_of_order_window_ms)},
      {"web.listen-address", config.listen_address},
      {"web.allow-unauthenticated-remote", config.allow_unauthenticated_remote ? "true" : "false"},
      {"query.timeout", promql::FormatDuration(config.query_timeout_ms)},
      {"query.max-samples", std::to_string(config.query_max_samples)},
      {"query.max-concurrency", std::to_string(flags.max_concurrency)},
      {"query.lookback-delta", promql::FormatDuration(config.lookback_delta_ms)},
  };
  api::Server server(options);
  if (absl::Status s = server.Start(host, port); !s.ok()) return Fail(std::string(s.message()));
  LogInfo(absl::StrCat("listening on ", config.listen_address,
                       auth_on ? " (auth on)" : " (auth off)"));

  LogInfo(absl::StrCat("opening storage at ", config.storage_path));
  Options db_options;
  db_options.path = config.storage_path;
  db_options.sync = config.sync;
  db_options.retention_ms = config.retention_ms;
  db_options.memory_budget_bytes = config.memory_budget_bytes;
  db_options.checkpoint_wal_bytes = config.checkpoint_wal_bytes;
  db_options.out_of_order_window_ms = config.out_of_order_window_ms;
  absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(db_options);
  if (!db.ok()) {
    server.Shutdown();
    return Fail(absl::StrCat("cannot open storage: ", db.status().ToString()));
  }
  server.SetDB(db->get());
  LogInfo("storage recovered; ready");
  Maintenance maintenance(db->get(), config.retention_ms, maintenance_interval_ms);

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  LogInfo(absl::StrCat("received ", signal_number == SIGTERM ? "SIGTERM" : "SIGINT",
                       "; shutting down"));
  server.Shutdown();  // stops accepting and finishes in-flight requests
  maintenance.Stop();
  server.SetDB(nullptr);
  if (absl::Status s = (*db)->Close(); !s.ok()) {
    return Fail(absl::StrCat("closing storage: ", s.ToString()));
  }
  LogInfo("storage closed; bye");
  return 0;
}

int HashToken() {
  std::string token(std::istreambuf_iterator<char>(std::cin), {});
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ' ||
                            token.back() == '\t')) {
    token.pop_back();
  }
  if (token.empty()) {
    std::fprintf(stderr, "hash-token: no token on stdin\n");
    return 1;
  }
  std::printf("%s\n", api::Sha256Hex(token).c_str());
  return 0;
}

}  // namespace
}  // namespace tidemark

int main(int argc, char** argv) {
  using tidemark::api::CurrentBuild;
  // Debian builds abseil without NDEBUG, which turns on the lock-order (deadlock) graph on every
  // Mutex acquisition: about 13% of the CPU of an ingest commit (bench/RESULTS.md). Tests keep
  // it on; the binary does not pay for it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // glibc gives each thread that allocates its own arena, and keeps what queries freed in each:
  // six concurrent dashboard queries took peak RSS from 184 MiB to 567 MiB that way (10,000
  // series; bench/RESULTS.md). Two arenas keep ingest threads from contending on one.
  mallopt(M_ARENA_MAX, 2);
  // glibc raises its mmap threshold to the size of each large block it unmaps (up to 32 MiB),
  // after which RocksDB's memtable arena blocks (1-2 MiB, freed at every flush) come from the
  // heap and leave holes there. A fixed 1 MiB threshold keeps them mapped (and the request
  // buffers below it, reused by the remote-write handler, on the heap): peak RSS -5% at 200 k
  // series, CPU unchanged (bench/RESULTS.md, session 5).
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  CLI::App app{"Tidemark: an embedded time-series metrics store with a Prometheus API."};
  app.require_subcommand(1);

  tidemark::ServeFlags flags;
  CLI::App* serve = app.add_subcommand("serve", "Run the server.");
  serve->add_option("--config.file", flags.config_file, "YAML config file (flags override it)");
  serve->add_option("--storage.path", flags.storage_path, "Data directory (default ./data)");
  serve->add_option("--web.listen-address", flags.listen_address,
                    "Address to listen on (default 127.0.0.1:9201)");
  serve->add_flag("--web.allow-unauthenticated-remote", flags.allow_unauthenticated_remote,
                  "Allow a non-loopback address without auth tokens");
  serve->add_option("--storage.retention", flags.retention,
                    "How long to keep samples, e.g. 15d, 720h (default 15d; 0 keeps all)");
  serve->add_option("--storage.fsync", flags.fsync,
                    "When acknowledged samples reach the disk: always | never (default always)");
  serve->add_option("--storage.out-of-order-window", flags.out_of_order_window,
                    "Accept samples up to this much older than the newest, e.g. 10m (default 0)");
  serve->add_option("--storage.memory-budget", flags.memory_budget,
                    "Memory for the head, memtables and block cache, e.g. 512MiB (default 256MiB)");
  serve->add_option("--storage.checkpoint-wal-size", flags.checkpoint_wal_size,
                    "Write-ahead log that triggers a head checkpoint, e.g. 128MiB (0: never)");
  serve->add_option("--storage.maintenance-interval", flags.maintenance_interval,
                    "How often chunks are sealed and the head checkpointed (default 30s)");
  serve->add_option("--query.timeout", flags.query_timeout, "Query timeout (default 2m)");
  serve->add_option("--query.max-samples", flags.max_samples,
                    "Samples one query may load at once (default 50000000)");
  serve->add_option("--query.lookback-delta", flags.lookback_delta,
                    "How far back instant selectors look (default 5m)");
  serve->add_option("--query.max-concurrency", flags.max_concurrency,
                    "Queries evaluated at once; more wait in line (default 20)");

  CLI::App* version = app.add_subcommand("version", "Print the version.");
  CLI::App* hash = app.add_subcommand(
      "hash-token", "Read a token on stdin and print its SHA-256 hex for the auth config.");

  tidemark::cli::Commands cli_commands(app);  // query, labels, label-values, series, slo

  CLI11_PARSE(app, argc, argv);
  if (std::optional<int> code = cli_commands.Run()) return *code;
  if (serve->parsed()) return tidemark::Serve(flags, *serve);
  if (version->parsed()) {
    const auto& b = CurrentBuild();
    std::printf("tidemark, version %s (branch: %s, revision: %s)\n", b.version.c_str(),
                b.branch.c_str(), b.revision.c_str());
    return 0;
  }
  if (hash->parsed()) return tidemark::HashToken();
  return 1;
}
