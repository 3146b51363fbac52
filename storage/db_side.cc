// DBImpl's side data of ingest: metric metadata, exemplars and ingest state.
//
// Layouts are in storage/FORMAT.md ("exemplars", "metadata", "state"). Each write is one RocksDB
// batch, synced like a commit. Writes that would change nothing (identical metadata, an
// exemplar already stored) are skipped, so retried requests are idempotent.
#include <algorithm>
#include <cstring>
#include <limits>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"
#include "storage/db_impl.h"
#include "storage/keys.h"
#include "storage/rocks_util.h"

namespace tidemark::internal {
namespace {

// Prometheus's limit on an exemplar's label set: names and values together, in runes.
constexpr size_t kMaxExemplarLabelRunes = 128;

size_t Runes(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<uint8_t>(c) & 0xc0) != 0x80;
  return n;
}

bool MatchesAny(const Labels& labels, const std::vector<std::vector<LabelMatcher>>& selectors) {
  for (const auto& matchers : selectors) {
    bool all = std::all_of(matchers.begin(), matchers.end(), [&](const LabelMatcher& m) {
      return m.Matches(labels.Get(m.name()));
    });
    if (all) return true;
  }
  return false;
}

}  // namespace

// --- metadata ---

absl::Status DBImpl::PutMetadata(std::string_view tenant, std::string_view metric,
                                 const MetricMetadata& metadata) {
  if (absl::Status s = CheckWritable(); !s.ok()) return s;
  if (metric.empty()) return absl::InvalidArgumentError("metadata: empty metric name");
  absl::StatusOr<uint32_t> tid = TenantForWrite(tenant);
  if (!tid.ok()) return tid.status();
  std::string value;
  EncodeMetadata(metadata.type, metadata.help, metadata.unit, &value);
  const std::string key = MetadataKey(*tid, metric);
  absl::MutexLock lock(&side_mu_);
  if (closed_.load()) return absl::FailedPreconditionError("database is closed");
  std::string old;
  rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), metadata_cf(), key, &old);
  if (rs.ok() && old == value) return absl::OkStatus();
  if (!rs.ok() && !rs.IsNotFound()) return FromRocks(rs, "read metadata");
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync == SyncPolicy::kAlways;
  rs = db_->Put(wo, metadata_cf(), key, value);
  if (!rs.ok()) return FromRocks(rs, absl::StrCat("write metadata of ", std::string(metric)));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::pair<std::string, MetricMetadata>>> DBImpl::GetMetadata(
    std::string_view tenant, std::string_view metric, int64_t limit) {
  if (closed_.load()) return absl::FailedPreconditionError("database is closed");
  std::vector<std::pair<std::string, MetricMetadata>> out;
  std::optional<uint32_t> tid = FindTenant(tenant);
  if (!tid.has_value() || metadata_cf() == nullptr) return out;
  auto add = [&](std::string_view name, std::string_view bytes) -> absl::Status {
    MetricMetadata md;
    absl::Status s = DecodeMetadata(bytes, &md.type, &md.help, &md.unit);
    if (!s.ok()) {
      return absl::DataLossError(
          absl::StrCat("metadata of ", std::string(name), ": ", s.message()));
    }
    out.emplace_back(std::string(name), std::move(md));
    return absl::OkStatus();
  };
  if (!metric.empty()) {
    std::string value;
    rocksdb::Status rs =
        db_->Get(rocksdb::ReadOptions(), metadata_cf(), MetadataKey(*tid, metric), &value);
    if (rs.IsNotFound()) return out;
    if (!rs.ok()) return FromRocks(rs, "read metadata");
    if (absl::Status s = add(metric, value); !s.ok()) return s;
    return out;
  }
  const std::string prefix = TenantPrefix(*tid);
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), metadata_cf()));
  for (it->Seek(prefix); it->Valid() && StartsWith(it->key(), prefix); it->Next()) {
    if (limit > 0 && static_cast<int64_t>(out.size()) >= limit) break;
    if (absl::Status s = add(View(it->key()).substr(prefix.size()), View(it->value()));
        !s.ok()) {
      return s;
    }
  }
  if (!it->status().ok()) return FromRocks(it->status(), "scan metadata");
  return out;
}

// --- ingest state ---

absl::Status DBImpl::PutState(std::string_view tenant, std::string_view key,
                              std::string_view value) {
  if (absl::Status s = CheckWritable(); !s.ok()) return s;
  absl::StatusOr<uint32_t> tid = TenantForWrite(tenant);
  if (!tid.ok()) return tid.status();
  absl::MutexLock lock(&side_mu_);
  if (closed_.load()) return absl::FailedPreconditionError("database is closed");
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync == SyncPolicy::kAlways;
  const std::string k = StateKey(*tid, key);
  rocksdb::Status rs = value.empty()
                           ? db_->Delete(wo, state_cf(), k)
                           : db_->Put(wo, state_cf(), k, rocksdb::Slice(value.data(),
                                                                       value.size()));
  if (!rs.ok()) return FromRocks(rs, "write ingest state");
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::string>> DBImpl::GetState(std::string_view tenant,
                                                            std::string_view key) {
  if (closed_.load()) return absl::FailedPreconditionError("database is closed");
  std::optional<uint32_t> tid = FindTenant(tenant);
  if (!tid.has_value() || state_cf() == nullptr) return std::optional<std::string>();
  std::string value;
  rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), state_cf(), StateKey(*tid, key), &value);
  if (rs.IsNotFound()) return std::optional<std::string>();
  if (!rs.ok()) return FromRocks(rs, "read ingest state");
  return std::optional<std::string>(std::move(value));
}

// --- exemplars ---

absl::Status DBImpl::AppendExemplars(std::string_view tenant, const Labels& series,
                                     std::span<const Exemplar> exemplars) {
  if (absl::Status s = CheckWritable(); !s.ok()) return s;
  if (exemplars.empty()) return absl::OkStatus();
  if (series.empty()) return absl::InvalidArgumentError("exemplar of a series with no labels");
  if (absl::Status s = Labels::Validate(series.items()); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("exemplar series ", series.ToString(), ": ", s.message()));
  }
  for (const Exemplar& e : exemplars) {
    if (absl::Status s = Labels::Validate(e.labels.items()); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("exemplar labels ", e.labels.ToString(),
                                                     " of ", series.ToString(), ": ",
                                                     s.message()));
    }
    size_t runes = 0;
    for (const Label& l : e.labels) runes += Runes(l.name) + Runes(l.value);
    if (runes > kMaxExemplarLabelRunes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "exemplar label set of ", series.ToString(), " is ", runes,
          " characters long, over the limit of ", kMaxExemplarLabelRunes));
    }
  }
  absl::StatusOr<uint32_t> tid = TenantForWrite(tenant);
  if (!tid.ok()) return tid.status();
  const std::string series_prefix = ExemplarSeriesPrefix(*tid, series);
  const uint64_t cap =
      static_cast<uint64_t>(std::max<int64_t>(1, options_.max_exemplars_per_tenant));

  absl::MutexLock lock(&exemplars_mu_);
  if (closed_.load()) return absl::FailedPreconditionError("database is closed");
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), exemplars_cf()));
  const std::string ring_prefix = ExemplarRingPrefix(*tid);
  auto ring_it = exemplar_rings_.find(*tid);
  if (ring_it == exemplar_rings_.end()) {
    ExemplarRing ring;
    it->Seek(ring_prefix);
    if (it->Valid() && StartsWith(it->key(), ring_prefix) && it->key().size() == 13) {
      ring.first = GetU64BE(View(it->key()).substr(5));
      it->SeekForPrev(ring_prefix + std::string(8, '\xff'));
      if (it->Valid() && StartsWith(it->key(), ring_prefix) && it->key().size() == 13) {
        ring.next = GetU64BE(View(it->key()).substr(5)) + 1;
      }
    }
    if (!it->status().ok()) return FromRocks(it->status(), "load exemplar ring");
    if (ring.next < ring.first) ring.next = ring.first;
    ring_it = exemplar_rings_.emplace(*tid, ring).first;
  }
  ExemplarRing ring = ring_it->second;

  // The new exemplars (key suffix and value), skipping those stored already or repeated.
  struct New {
    int64_t t;
    std::string value;
  };
  std::vector<New> fresh;
  absl::flat_hash_set<std::string> seen;  // i64o t + value
  for (const Exemplar& e : exemplars) {
    New n{e.t_ms, {}};
    EncodeExemplarValue(e.labels, e.value, &n.value);
    std::string at = series_prefix;
    PutI64Ordered(&at, e.t_ms);
    std::string id = at.substr(series_prefix.size()) + n.value;
    if (!seen.insert(id).second) continue;
    bool stored = false;
    for (it->Seek(at); it->Valid() && StartsWith(it->key(), at); it->Next()) {
      if (it->key().size() == at.size() + 8 && View(it->value()) == n.value) {
        stored = true;
        break;
      }
    }
    if (!it->status().ok()) return FromRocks(it->status(), "look up exemplar");
    if (!stored) fresh.push_back(std::move(n));
  }
  if (fresh.empty()) return absl::OkStatus();
  if (fresh.size() > cap) fresh.erase(fresh.begin(), fresh.end() - static_cast<ptrdiff_t>(cap));

  rocksdb::WriteBatch batch;
  uint64_t next = ring.next;
  for (const New& n : fresh) {
    std::string key = series_prefix;
    PutI64Ordered(&key, n.t);
    PutU64BE(&key, next);
    batch.Put(exemplars_cf(), key, n.value);
    batch.Put(exemplars_cf(), ExemplarRingKey(*tid, next), key);
    ++next;
  }
  // Evict the oldest beyond the cap: each ring entry names the index key it keeps alive.
  uint64_t first = ring.first;
  if (next - first > cap) {
    const uint64_t new_first = next - cap;
    const std::string end = ExemplarRingKey(*tid, new_first);
    for (it->Seek(ExemplarRingKey(*tid, first));
         it->Valid() && StartsWith(it->key(), ring_prefix) && View(it->key()) < end;
         it->Next()) {
      batch.Delete(exemplars_cf(), it->key());
      batch.Delete(exemplars_cf(), it->value());
    }
    if (!it->status().ok()) return FromRocks(it->status(), "evict exemplars");
    first = new_first;
  }
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync == SyncPolicy::kAlways;
  rocksdb::Status rs = db_->Write(wo, &batch);
  if (!rs.ok()) return FromRocks(rs, "write exemplars");
  ring_it->second = ExemplarRing{first, next};
  return absl::OkStatus();
}

absl::Status DBImpl::DeleteExemplarsBefore(int64_t cutoff_ms) {
  if (exemplars_cf() == nullptr) return absl::OkStatus();
  std::vector<uint32_t> tenants;
  {
    absl::MutexLock lock(&tenants_mu_);
    for (const auto& [name, id] : tenants_) tenants.push_back(id);
  }
  absl::MutexLock lock(&exemplars_mu_);
  if (closed_.load()) return absl::FailedPreconditionError("database is closed");
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), exemplars_cf()));
  for (uint32_t tid : tenants) {
    // Per series (keys ordered by time): delete the leading keys before the cutoff and their
    // ring entries, then skip to the next series. Holes in the ring are harmless: eviction
    // deletes whatever ring entries remain below its new start.
    rocksdb::WriteBatch batch;
    const std::string index_prefix = ExemplarIndexPrefix(tid);
    it->Seek(index_prefix);
    while (it->Valid() && StartsWith(it->key(), index_prefix)) {
      std::string_view label_bytes;
      int64_t t;
      uint64_t seq;
      if (!ParseExemplarIndexKey(View(it->key()), &label_bytes, &t, &seq)) {
        return absl::DataLossError(
            absl::StrCat("malformed exemplar key of ", it->key().size(), " bytes"));
      }
      const std::string series_prefix(
          View(it->key()).substr(0, it->key().size() - kExemplarKeySuffixSize));
      for (; it->Valid() && StartsWith(it->key(), series_prefix); it->Next()) {
        if (!ParseExemplarIndexKey(View(it->key()), &label_bytes, &t, &seq)) {
          return absl::DataLossError("malformed exemplar key");
        }
        if (t >= cutoff_ms) break;
        batch.Delete(exemplars_cf(), it->key());
        batch.Delete(exemplars_cf(), ExemplarRingKey(tid, seq));
      }
      it->Seek(series_prefix + std::string(kExemplarKeySuffixSize, '\xff'));
      if (it->Valid() && StartsWith(it->key(), series_prefix)) it->Next();
    }
    if (!it->status().ok()) return FromRocks(it->status(), "scan exemplars for retention");
    if (batch.Count() == 0) continue;
    rocksdb::Status rs = db_->Write(rocksdb::WriteOptions(), &batch);
    if (!rs.ok()) return FromRocks(rs, "delete old exemplars");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<SeriesExemplars>> DBImpl::QueryExemplars(
    std::string_view tenant, const std::vector<std::vector<LabelMatcher>>& selectors,
    int64_t mint_ms, int64_t maxt_ms) {
  if (closed_.load()) return absl::FailedPreconditionError("database is closed");
  std::vector<SeriesExemplars> out;
  std::optional<uint32_t> tid = FindTenant(tenant);
  if (!tid.has_value() || exemplars_cf() == nullptr || selectors.empty() || mint_ms > maxt_ms) {
    return out;
  }
  const std::string index_prefix = ExemplarIndexPrefix(*tid);
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), exemplars_cf()));
  it->Seek(index_prefix);
  // One series at a time: decode its labels from its first key, then either read its
  // exemplars in range or skip past all its keys.
  while (it->Valid() && StartsWith(it->key(), index_prefix)) {
    std::string_view label_bytes;
    int64_t t;
    uint64_t seq;
    if (!ParseExemplarIndexKey(View(it->key()), &label_bytes, &t, &seq)) {
      return absl::DataLossError(
          absl::StrCat("malformed exemplar key of ", it->key().size(), " bytes"));
    }
    const std::string series_prefix(
        View(it->key()).substr(0, it->key().size() - kExemplarKeySuffixSize));
    absl::StatusOr<Labels> labels = DecodeLabels(label_bytes);
    if (!labels.ok()) return labels.status();
    if (MatchesAny(*labels, selectors)) {
      SeriesExemplars se;
      se.series = *std::move(labels);
      std::string from = series_prefix;
      PutI64Ordered(&from, mint_ms);
      for (it->Seek(from); it->Valid() && StartsWith(it->key(), series_prefix); it->Next()) {
        if (!ParseExemplarIndexKey(View(it->key()), &label_bytes, &t, &seq)) {
          return absl::DataLossError("malformed exemplar key");
        }
        if (t > maxt_ms) break;
        Exemplar e;
        e.t_ms = t;
        if (absl::Status s = DecodeExemplarValue(View(it->value()), &e.labels, &e.value);
            !s.ok()) {
          return s;
        }
        se.exemplars.push_back(std::move(e));
      }
      if (!se.exemplars.empty()) out.push_back(std::move(se));
    }
    it->Seek(series_prefix + std::string(kExemplarKeySuffixSize, '\xff'));
    if (it->Valid() && StartsWith(it->key(), series_prefix)) it->Next();
  }
  if (!it->status().ok()) return FromRocks(it->status(), "scan exemplars");
  std::sort(out.begin(), out.end(), [](const SeriesExemplars& a, const SeriesExemplars& b) {
    return a.series < b.series;
  });
  return out;
}

}  // namespace tidemark::internal
