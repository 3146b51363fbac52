// DBImpl's write path: the appender and the commit.
#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"
#include "storage/chunk.h"
#include "storage/db_impl.h"
#include "storage/keys.h"

namespace tidemark::internal {
namespace {

absl::Status RejectFor(Verdict v, const Labels& labels, const Sample& s) {
  RejectReason reason =
      v == Verdict::kOutOfOrder ? RejectReason::kOutOfOrder : RejectReason::kDuplicate;
  return StatusOf(reason, absl::StrCat("series ", labels.ToString(), " timestamp ", s.t));
}

class AppenderImpl : public Appender {
 public:
  AppenderImpl(DBImpl* db, std::string_view tenant) : db_(db), tenant_(tenant) {}

  absl::Status Append(const Labels& labels, int64_t t_ms, double v) override {
    const Sample sample{t_ms, v};
    std::string key;
    EncodeLabels(labels, &key);
    auto found = index_.find(key);
    if (found != index_.end() && !pending_[found->second].samples.empty()) {
      const Sample& last = pending_[found->second].samples.back();
      Verdict verdict = CheckSample(true, last, sample);
      if (verdict == Verdict::kIgnore) return absl::OkStatus();
      if (verdict != Verdict::kAccept) return RejectFor(verdict, labels, sample);
      pending_[found->second].samples.push_back(sample);
      ++count_;
      return absl::OkStatus();
    }
    if (found == index_.end()) {
      absl::Status valid = Labels::Validate(labels.items());
      if (!valid.ok()) return StatusOf(RejectReason::kInvalidLabels, std::string(valid.message()));
    }
    if (!tenant_id_.has_value()) tenant_id_ = db_->FindTenant(tenant_);
    if (tenant_id_.has_value()) {
      absl::StatusOr<MemSeries*> series = db_->FindSeries(*tenant_id_, labels);
      if (!series.ok()) return series.status();
      if (*series != nullptr) {
        MemSeries* s = *series;
        Verdict verdict;
        {
          Head::Shard& shard = db_->head().ShardFor(Head::Key(s->tenant, s->labels));
          absl::MutexLock lock(&shard.mu);
          verdict = CheckSample(s->has_last, s->last, sample);
        }
        if (verdict == Verdict::kOutOfOrder) {
          absl::StatusOr<bool> same = db_->StoredIdentical(s, sample);
          if (!same.ok()) return same.status();
          if (*same) verdict = Verdict::kIgnore;
        }
        if (verdict == Verdict::kIgnore) return absl::OkStatus();
        if (verdict != Verdict::kAccept) return RejectFor(verdict, labels, sample);
      }
    }
    if (found == index_.end()) {
      found = index_.emplace(std::move(key), pending_.size()).first;
      pending_.push_back(PendingSeries{labels, {}});
    }
    pending_[found->second].samples.push_back(sample);
    ++count_;
    return absl::OkStatus();
  }

  absl::Status Commit() override {
    absl::Status s = count_ == 0 ? absl::OkStatus() : db_->CommitPending(tenant_, pending_);
    Rollback();
    return s;
  }

  void Rollback() override {
    pending_.clear();
    index_.clear();
    count_ = 0;
  }

  size_t pending() const override { return count_; }

 private:
  DBImpl* const db_;
  const std::string tenant_;
  std::optional<uint32_t> tenant_id_;
  std::vector<PendingSeries> pending_;
  absl::flat_hash_map<std::string, size_t> index_;  // label bytes -> index in pending_
  size_t count_ = 0;
};

absl::Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  return absl::UnavailableError(absl::StrCat(std::string(what), ": ", s.ToString()));
}

}  // namespace

absl::StatusOr<bool> DBImpl::StoredIdentical(MemSeries* series, const Sample& sample) {
  {
    Head::Shard& shard = head_.ShardFor(Head::Key(series->tenant, series->labels));
    absl::MutexLock lock(&shard.mu);
    auto it = std::lower_bound(series->open.begin(), series->open.end(), sample.t,
                               [](const Sample& a, int64_t t) { return a.t < t; });
    if (it != series->open.end() && it->t == sample.t) return *it == sample;
    if (sample.t > series->sealed_max_t) return false;
  }
  // Sealed: the chunk that starts at or before the timestamp.
  const std::string prefix = ChunkSeriesPrefix(series->tenant, series->id);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), chunks_cf()));
  it->SeekForPrev(ChunkKey(series->tenant, series->id, sample.t));
  if (!it->status().ok()) return FromRocks(it->status(), "find chunk");
  if (!it->Valid() || it->key().size() != kChunkKeySize ||
      std::string_view(it->key().data(), prefix.size()) != prefix) {
    return false;
  }
  ChunkIterator ci(std::string_view(it->value().data(), it->value().size()));
  const bool found = ci.Seek(sample.t) && ci.At().t == sample.t;
  if (!ci.status().ok()) {
    return absl::DataLossError(
        absl::StrCat("chunk of series ", series->id, ": ", ci.status().message()));
  }
  return found && ci.At() == sample;
}

std::unique_ptr<Appender> DBImpl::NewAppender(std::string_view tenant) {
  return std::make_unique<AppenderImpl>(this, tenant);
}

absl::Status DBImpl::CommitPending(std::string_view tenant, std::vector<PendingSeries>& pending) {
  if (options_.read_only) return absl::FailedPreconditionError("database is read-only");
  absl::MutexLock commit(&commit_mu_);
  if (closed_.load()) return absl::FailedPreconditionError("database is closed");

  rocksdb::WriteBatch batch;
  std::optional<uint32_t> tenant_id = FindTenant(tenant);
  const bool new_tenant = !tenant_id.has_value();
  if (new_tenant) {
    tenant_id = next_tenant_id_;
    std::string id, next;
    PutU32BE(&id, *tenant_id);
    PutU32BE(&next, *tenant_id + 1);
    batch.Put(meta_cf(), absl::StrCat(kMetaTenantPrefix, std::string(tenant)), id);
    batch.Put(meta_cf(), kMetaNextTenantId, next);
  }
  const uint32_t tid = *tenant_id;

  struct Plan {
    MemSeries* series = nullptr;  // nullptr: created by this commit
    uint64_t id = 0;
    const Labels* labels = nullptr;
    std::vector<Sample> samples;  // accepted, increasing
    int32_t indexed_day = std::numeric_limits<int32_t>::min();
  };
  std::vector<Plan> plans;
  std::vector<WalEntry> entries;
  uint64_t next_sid = next_series_id_;
  for (PendingSeries& p : pending) {
    Plan plan;
    plan.labels = &p.labels;
    bool has_last = false;
    Sample last;
    if (!new_tenant) {
      absl::StatusOr<MemSeries*> found = FindSeries(tid, p.labels);
      if (!found.ok()) return found.status();
      plan.series = *found;
    }
    if (plan.series != nullptr) {
      Head::Shard& shard = head_.ShardFor(Head::Key(tid, p.labels));
      absl::MutexLock lock(&shard.mu);
      has_last = plan.series->has_last;
      last = plan.series->last;
      plan.id = plan.series->id;
      plan.indexed_day = plan.series->last_indexed_day;
    }
    // Samples are checked again: another appender may have committed since Append.
    for (const Sample& s : p.samples) {
      Verdict v = CheckSample(has_last, last, s);
      if (v == Verdict::kOutOfOrder && plan.series != nullptr && plan.samples.empty()) {
        absl::StatusOr<bool> same = StoredIdentical(plan.series, s);
        if (!same.ok()) return same.status();
        if (*same) v = Verdict::kIgnore;
      }
      if (v == Verdict::kIgnore) continue;
      if (v != Verdict::kAccept) return RejectFor(v, p.labels, s);
      plan.samples.push_back(s);
      has_last = true;
      last = s;
    }
    if (plan.samples.empty()) continue;
    WalEntry entry;
    entry.tenant = tid;
    if (plan.series == nullptr) {
      plan.id = next_sid++;
      std::string id, label_bytes;
      PutU64BE(&id, plan.id);
      EncodeLabels(p.labels, &label_bytes);
      batch.Put(series_cf(), SeriesByLabelsKey(tid, p.labels), id);
      batch.Put(series_cf(), SeriesByIdKey(tid, plan.id), label_bytes);
      entry.has_labels = true;
      entry.labels = p.labels;
    }
    entry.series_id = plan.id;
    for (const Sample& s : plan.samples) {
      int32_t day = DayOf(s.t);
      if (day <= plan.indexed_day) continue;
      for (const Label& l : p.labels) {
        batch.Put(postings_cf(), PostingKey(tid, day, l.name, l.value, plan.id), "");
      }
      plan.indexed_day = day;
    }
    entry.samples = plan.samples;
    entries.push_back(std::move(entry));
    plans.push_back(std::move(plan));
  }
  if (entries.empty()) return absl::OkStatus();
  if (next_sid != next_series_id_) {
    std::string next;
    PutU64BE(&next, next_sid);
    batch.Put(meta_cf(), kMetaNextSeriesId, next);
  }
  const uint64_t seq = next_wal_seq_;
  std::string record;
  EncodeWalRecord(entries, &record);
  batch.Put(wal_cf(), WalKey(seq), record);

  rocksdb::WriteOptions wo;
  wo.sync = options_.sync == SyncPolicy::kAlways;
  rocksdb::Status rs = db_->Write(wo, &batch);
  if (!rs.ok()) return FromRocks(rs, "write-ahead log");

  next_wal_seq_ = seq + 1;
  next_series_id_ = next_sid;
  NoteWalRecord(seq, static_cast<int64_t>(8 + record.size()));
  if (new_tenant) {
    next_tenant_id_ = tid + 1;
    absl::MutexLock lock(&tenants_mu_);
    tenants_[std::string(tenant)] = tid;
  }
  // Durable: apply to the head. A failed seal keeps the samples in the head (and the WAL), so
  // it does not fail the commit; the next Compact retries.
  for (Plan& plan : plans) {
    std::string key = Head::Key(tid, *plan.labels);
    Head::Shard& shard = head_.ShardFor(key);
    absl::MutexLock lock(&shard.mu);
    MemSeries* s = plan.series;
    if (s == nullptr) {
      auto created = std::make_unique<MemSeries>();
      created->tenant = tid;
      created->id = plan.id;
      created->labels = *plan.labels;
      s = created.get();
      shard.series[key] = std::move(created);
    }
    if (s->open.empty()) s->open_min_seq = seq;
    s->open.insert(s->open.end(), plan.samples.begin(), plan.samples.end());
    s->last = plan.samples.back();
    s->has_last = true;
    s->last_indexed_day = plan.indexed_day;
    samples_appended_ += static_cast<int64_t>(plan.samples.size());
    NoteTime(plan.samples.front().t);
    NoteTime(plan.samples.back().t);
    (void)SealLocked(s, false, seq, plan.samples.size());
  }
  return absl::OkStatus();
}

}  // namespace tidemark::internal
