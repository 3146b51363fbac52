// The embedded QuerySource: a Tidemark data directory opened read-only, queried in-process.
#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli/query_source.h"
#include "query/engine.h"
#include "query/parser.h"
#include "storage/db.h"

namespace tidemark::cli {
namespace {

class EmbeddedSource : public QuerySource {
 public:
  EmbeddedSource(EmbeddedSourceOptions options, std::unique_ptr<DB> db)
      : options_(std::move(options)),
        db_(std::move(db)),
        data_(db_->ForTenant(options_.tenant.empty() ? kDefaultTenant : options_.tenant)),
        engine_(promql::EngineOptions{.lookback_delta_ms = options_.lookback_delta_ms}) {}

  ~EmbeddedSource() override {
    data_.reset();
    (void)db_->Close();
  }

  absl::StatusOr<promql::Value> Instant(std::string_view query, int64_t time_ms) override {
    absl::StatusOr<promql::QueryResult> r = engine_.Instant(*data_, query, time_ms);
    if (!r.ok()) return Annotate(r.status(), query);
    return std::move(r->value);
  }

  absl::StatusOr<promql::Matrix> Range(std::string_view query, int64_t start_ms, int64_t end_ms,
                                       int64_t step_ms) override {
    absl::StatusOr<promql::QueryResult> r = engine_.Range(*data_, query, start_ms, end_ms, step_ms);
    if (!r.ok()) return Annotate(r.status(), query);
    if (auto* m = std::get_if<promql::Matrix>(&r->value)) return std::move(*m);
    return absl::InternalError("range query gave a non-matrix result");
  }

  absl::StatusOr<std::vector<std::string>> LabelNames(std::string_view selector, int64_t start_ms,
                                                      int64_t end_ms) override {
    absl::StatusOr<std::vector<LabelMatcher>> matchers = Matchers(selector);
    if (!matchers.ok()) return matchers.status();
    absl::StatusOr<std::unique_ptr<Querier>> q = data_->NewQuerier(start_ms, end_ms);
    if (!q.ok()) return q.status();
    return (*q)->LabelNames(*matchers);
  }

  absl::StatusOr<std::vector<std::string>> LabelValues(std::string_view name,
                                                       std::string_view selector, int64_t start_ms,
                                                       int64_t end_ms) override {
    absl::StatusOr<std::vector<LabelMatcher>> matchers = Matchers(selector);
    if (!matchers.ok()) return matchers.status();
    absl::StatusOr<std::unique_ptr<Querier>> q = data_->NewQuerier(start_ms, end_ms);
    if (!q.ok()) return q.status();
    return (*q)->LabelValues(std::string(name), *matchers);
  }

  absl::StatusOr<std::vector<Labels>> Series(std::string_view selector, int64_t start_ms,
                                             int64_t end_ms) override {
    absl::StatusOr<std::vector<LabelMatcher>> matchers = Matchers(selector);
    if (!matchers.ok()) return matchers.status();
    if (matchers->empty()) return absl::InvalidArgumentError("series needs a selector");
    absl::StatusOr<std::unique_ptr<Querier>> q = data_->NewQuerier(start_ms, end_ms);
    if (!q.ok()) return q.status();
    absl::StatusOr<std::vector<tidemark::Series>> series =
        (*q)->Select(*matchers, SelectHints{start_ms, end_ms});
    if (!series.ok()) return series.status();
    std::vector<Labels> out;
    for (tidemark::Series& s : *series) out.push_back(std::move(s.labels));
    std::sort(out.begin(), out.end());
    return out;
  }

  std::string Describe() const override { return absl::StrCat("storage ", options_.path); }

 private:
  static absl::Status Annotate(const absl::Status& s, std::string_view query) {
    return absl::Status(s.code(), absl::StrCat("query ", std::string(query), ": ", s.message()));
  }

  static absl::StatusOr<std::vector<LabelMatcher>> Matchers(std::string_view selector) {
    if (selector.empty()) return std::vector<LabelMatcher>{};
    return promql::ParseSelector(selector);
  }

  EmbeddedSourceOptions options_;
  std::unique_ptr<DB> db_;
  std::unique_ptr<Queryable> data_;
  promql::Engine engine_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<QuerySource>> NewEmbeddedSource(
    const EmbeddedSourceOptions& options) {
  std::error_code ec;
  if (!std::filesystem::is_directory(options.path, ec)) {
    return absl::NotFoundError(
        absl::StrCat("--storage.path ", options.path, ": no such data directory"));
  }
  Options db_options;
  db_options.path = options.path;
  db_options.read_only = true;
  db_options.retention_ms = 0;
  absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(db_options);
  if (!db.ok()) {
    return absl::Status(db.status().code(), absl::StrCat("cannot open ", options.path,
                                                         " read-only: ", db.status().message()));
  }
  return std::unique_ptr<QuerySource>(new EmbeddedSource(options, std::move(*db)));
}

}  // namespace tidemark::cli
