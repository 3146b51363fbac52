// DBImpl's write path: the appender and the commit.
//
// Per sample, Append hashes the labels once (LabelsHash), finds the series in the head by that
// hash (no key string, no Labels copy for a known series), checks the sample against the
// series' tail and keeps the pinned series pointer for Commit, which does not look it up again.
#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"
#include "storage/chunk.h"
#include "storage/db_impl.h"
#include "storage/keys.h"
#include "storage/rocks_util.h"

namespace tidemark::internal {
namespace {

absl::Status RejectFor(Verdict v, std::string_view labels, const Sample& s) {
  RejectReason reason =
      v == Verdict::kOutOfOrder ? RejectReason::kOutOfOrder : RejectReason::kDuplicate;
  return StatusOf(reason, absl::StrCat("series ", std::string(labels), " timestamp ", s.t));
}

std::string Describe(const PendingSeries& p) {
  return p.series != nullptr ? p.series->labels().ToString() : p.labels.ToString();
}

// Calls fn(name, value) for each label of EncodeLabels' form (validated when stored).
template <typename Fn>
void ForEachEncodedLabel(std::string_view in, Fn fn) {
  while (!in.empty()) {
    uint64_t n = 0;
    if (!GetVarint(&in, &n) || n > in.size()) return;
    std::string_view name = in.substr(0, n);
    in.remove_prefix(n);
    if (!GetVarint(&in, &n) || n > in.size()) return;
    std::string_view value = in.substr(0, n);
    in.remove_prefix(n);
    fn(name, value);
  }
}

class AppenderImpl : public Appender {
 public:
  AppenderImpl(DBImpl* db, std::string_view tenant) : db_(db), tenant_(tenant) {}
  ~AppenderImpl() override { Rollback(); }

  absl::Status Append(const Labels& labels, int64_t t_ms, double v) override {
    const Sample sample{t_ms, v};
    const uint64_t lh = LabelsHash(labels);
    PendingSeries* p = FindPending(lh, labels);
    if (p != nullptr && !p->samples.empty()) {
      Verdict verdict = CheckSample(true, p->samples.back(), sample);
      if (verdict == Verdict::kIgnore) return absl::OkStatus();
      if (verdict != Verdict::kAccept) return RejectFor(verdict, labels.ToString(), sample);
      p->samples.push_back(sample);
      ++count_;
      return absl::OkStatus();
    }
    if (!tenant_id_.has_value()) tenant_id_ = db_->FindTenant(tenant_);
    MemSeries* series = nullptr;
    if (tenant_id_.has_value()) {
      Verdict verdict = Verdict::kAccept;
      absl::StatusOr<MemSeries*> found =
          db_->FindSeriesPinned(*tenant_id_, lh, labels, sample, &verdict);
      if (!found.ok()) return found.status();
      series = *found;
      if (series != nullptr && verdict == Verdict::kOutOfOrder) {
        absl::StatusOr<bool> same = db_->StoredIdentical(series, sample);
        if (!same.ok()) {
          db_->Unpin(series);
          return same.status();
        }
        if (*same) verdict = Verdict::kIgnore;
      }
      if (series != nullptr && verdict != Verdict::kAccept) {
        db_->Unpin(series);
        if (verdict == Verdict::kIgnore) return absl::OkStatus();
        return RejectFor(verdict, labels.ToString(), sample);
      }
    }
    if (p == nullptr) {
      // A series in the head was validated when it was made; only new ones are checked.
      if (series == nullptr) {
        absl::Status valid = Labels::Validate(labels.items());
        if (!valid.ok()) {
          return StatusOf(RejectReason::kInvalidLabels, std::string(valid.message()));
        }
      }
      index_.emplace(lh, pending_.size());
      pending_.emplace_back();
      p = &pending_.back();
      p->labels_hash = lh;
      p->series = series;
      if (series == nullptr) p->labels = labels;
    } else if (series != nullptr) {
      // Pinned again by the lookup above; the pending entry holds one pin.
      if (p->series == nullptr) p->series = series;
      else db_->Unpin(series);
    }
    p->samples.push_back(sample);
    ++count_;
    return absl::OkStatus();
  }

  absl::Status Commit() override {
    absl::Status s = count_ == 0 ? absl::OkStatus() : db_->CommitPending(tenant_, pending_);
    Rollback();
    return s;
  }

  void Rollback() override {
    for (PendingSeries& p : pending_) {
      if (p.series != nullptr) db_->Unpin(p.series);
    }
    pending_.clear();
    index_.clear();
    count_ = 0;
  }

  size_t pending() const override { return count_; }

 private:
  static bool Same(const PendingSeries& p, const Labels& labels) {
    return p.series != nullptr ? LabelsEqualEncoded(labels, p.series->label_bytes)
                               : p.labels == labels;
  }

  PendingSeries* FindPending(uint64_t lh, const Labels& labels) {
    auto it = index_.find(lh);
    if (it == index_.end()) return nullptr;
    if (Same(pending_[it->second], labels)) return &pending_[it->second];
    // Two label sets with one hash: the map keeps the first; look at the others directly.
    for (PendingSeries& p : pending_) {
      if (p.labels_hash == lh && Same(p, labels)) return &p;
    }
    return nullptr;
  }

  DBImpl* const db_;
  const std::string tenant_;
  std::optional<uint32_t> tenant_id_;
  std::vector<PendingSeries> pending_;
  // LabelsHash -> index in pending_ of the first series with that hash.
  absl::flat_hash_map<uint64_t, size_t> index_;
  size_t count_ = 0;
};

}  // namespace

absl::StatusOr<MemSeries*> DBImpl::FindSeriesPinned(uint32_t tenant, uint64_t labels_hash,
                                                     const Labels& labels, const Sample& sample,
                                                     Verdict* verdict) {
  if (closed_.load()) return ClosedError();
  const uint64_t hash = SeriesHash(tenant, labels_hash);
  const Head::Key key{hash, tenant, &labels};
  Head::Shard& shard = head_.ShardFor(hash);
  {
    absl::MutexLock lock(&shard.mu);
    if (MemSeries* s = Head::FindLocked(shard, key); s != nullptr) {
      ++s->pins;
      *verdict = CheckSample(s->has_tail, s->tail, sample);
      return s;
    }
  }
  absl::StatusOr<MemSeries*> s = LoadSeriesPinned(tenant, hash, labels, /*create=*/false);
  if (!s.ok() || *s == nullptr) return s;
  absl::MutexLock lock(&shard.mu);
  *verdict = CheckSample((*s)->has_tail, (*s)->tail, sample);
  return s;
}

absl::StatusOr<MemSeries*> DBImpl::LoadSeriesPinned(uint32_t tenant, uint64_t hash,
                                                    const Labels& labels, bool create) {
  const Head::Key key{hash, tenant, &labels};
  Head::Shard& shard = head_.ShardFor(hash);
  auto series = std::make_unique<MemSeries>();
  series->tenant = tenant;
  series->hash = hash;
  EncodeLabels(labels, &series->label_bytes);
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), series_cf(),
                               SeriesByLabelBytesKey(tenant, series->label_bytes), &value);
  if (s.ok()) {
    if (value.size() != 8) {
      return absl::DataLossError(absl::StrCat("series id of ", labels.ToString(), " has ",
                                              value.size(), " bytes"));
    }
    series->id = GetU64BE(value);
    series->indexed = true;
    absl::Status st = LoadSealedTail(series.get());
    if (!st.ok()) return st;
    series->has_tail = series->has_last;
    series->tail = series->last;
  } else if (!s.IsNotFound()) {
    return FromRocks(s, absl::StrCat("look up series ", labels.ToString()));
  } else if (!create) {
    return nullptr;
  } else {
    series->id = next_series_id_.fetch_add(1);
  }
  absl::MutexLock lock(&shard.mu);
  MemSeries* out = Head::FindLocked(shard, key);  // another thread may have won the race
  if (out == nullptr) {
    out = series.get();
    Head::InsertLocked(shard, std::move(series));
  }
  ++out->pins;
  return out;
}

void DBImpl::Unpin(MemSeries* s) {
  absl::MutexLock lock(&head_.ShardOf(*s).mu);
  --s->pins;
}

void DBImpl::CopyHeadSamples(uint32_t tenant, const Labels& labels, int64_t mint, int64_t maxt,
                             std::vector<Sample>* out) {
  const uint64_t hash = SeriesHash(tenant, LabelsHash(labels));
  Head::Shard& shard = head_.ShardFor(hash);
  absl::MutexLock lock(&shard.mu);
  MemSeries* s = Head::FindLocked(shard, Head::Key{hash, tenant, &labels});
  if (s == nullptr) return;
  auto it = std::lower_bound(s->open.begin(), s->open.end(), mint,
                             [](const Sample& a, int64_t t) { return a.t < t; });
  for (; it != s->open.end() && it->t <= maxt; ++it) out->push_back(*it);
}

absl::StatusOr<bool> DBImpl::StoredIdentical(MemSeries* series, const Sample& sample) {
  {
    absl::MutexLock lock(&head_.ShardOf(*series).mu);
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
  if (!BeginCommit()) return ClosedError();
  struct EndCommitOnExit {
    DBImpl* db;
    ~EndCommitOnExit() { db->EndCommit(); }
  } end_commit{this};
  if (closed_.load()) return ClosedError();

  absl::StatusOr<uint32_t> tenant_id = TenantForWrite(tenant);
  if (!tenant_id.ok()) return tenant_id.status();
  const uint32_t tid = *tenant_id;

  // Series unknown at Append: found now (another commit may have made them) or created.
  for (PendingSeries& p : pending) {
    if (p.series != nullptr || p.samples.empty()) continue;
    const uint64_t hash = SeriesHash(tid, p.labels_hash);
    absl::StatusOr<MemSeries*> s = LoadSeriesPinned(tid, hash, p.labels, /*create=*/true);
    if (!s.ok()) return s.status();  // the appender unpins what it holds
    p.series = *s;
  }

  struct Plan {
    MemSeries* series = nullptr;
    absl::InlinedVector<Sample, 2> samples;  // accepted, increasing
    bool prev_has_tail = false;
    Sample prev_tail;
    bool write_index = false;
    int32_t indexed_day = std::numeric_limits<int32_t>::min();
  };
  std::vector<Plan> plans;
  plans.reserve(pending.size());
  // Samples (series index, sample index) that turned out to be stored already.
  std::vector<std::pair<size_t, size_t>> identical;
  auto is_identical = [&identical](size_t i, size_t j) {
    return std::find(identical.begin(), identical.end(), std::make_pair(i, j)) != identical.end();
  };
  auto unreserve = [this](std::vector<Plan>& ps) {
    for (Plan& plan : ps) {
      MemSeries* s = plan.series;
      absl::MutexLock lock(&head_.ShardOf(*s).mu);
      if (s->has_tail && s->tail.t == plan.samples.back().t) {
        s->has_tail = plan.prev_has_tail;
        s->tail = plan.prev_tail;
      }
      if (--s->inflight == 0) s->inflight_min_t = std::numeric_limits<int64_t>::max();
    }
    ps.clear();
  };

  // Check and reserve every series' samples, then take the WAL sequence number, all under
  // reserve_mu_ (memory only). A sample older than a series' tail may be a resent one: that
  // needs a read, done with no lock held, and the reservation starts over.
  uint64_t seq = 0;
  for (;;) {
    std::optional<std::pair<size_t, size_t>> to_check;
    absl::Status reject;
    {
      absl::MutexLock reserve(&reserve_mu_);
      for (size_t i = 0; i < pending.size() && !to_check && reject.ok(); ++i) {
        PendingSeries& p = pending[i];
        if (p.samples.empty()) continue;
        MemSeries* s = p.series;
        absl::MutexLock lock(&head_.ShardOf(*s).mu);
        Plan plan;
        plan.series = s;
        bool has = s->has_tail;
        Sample last = s->tail;
        for (size_t j = 0; j < p.samples.size(); ++j) {
          const Sample& x = p.samples[j];
          Verdict v = CheckSample(has, last, x);
          if (v == Verdict::kOutOfOrder && plan.samples.empty() && !is_identical(i, j)) {
            to_check = std::make_pair(i, j);
            break;
          }
          if (v == Verdict::kOutOfOrder && is_identical(i, j)) v = Verdict::kIgnore;
          if (v == Verdict::kIgnore) continue;
          if (v != Verdict::kAccept) {
            reject = RejectFor(v, Describe(p), x);
            break;
          }
          plan.samples.push_back(x);
          has = true;
          last = x;
        }
        if (to_check || !reject.ok() || plan.samples.empty()) continue;
        plan.prev_has_tail = s->has_tail;
        plan.prev_tail = s->tail;
        s->has_tail = true;
        s->tail = plan.samples.back();
        if (s->inflight++ == 0) s->inflight_min_t = plan.samples.front().t;
        else s->inflight_min_t = std::min(s->inflight_min_t, plan.samples.front().t);
        plan.write_index = !s->indexed;
        plan.indexed_day = s->last_indexed_day;
        plans.push_back(std::move(plan));
      }
      if (!to_check && reject.ok() && !plans.empty()) {
        absl::MutexLock lock(&wal_mu_);
        seq = next_wal_seq_++;
        inflight_.insert(seq);
      }
      if (to_check || !reject.ok()) unreserve(plans);
    }
    if (!reject.ok()) return reject;
    if (!to_check) break;
    auto [i, j] = *to_check;
    absl::StatusOr<bool> same = StoredIdentical(pending[i].series, pending[i].samples[j]);
    if (!same.ok()) return same.status();
    if (!*same) {
      return RejectFor(Verdict::kOutOfOrder, Describe(pending[i]), pending[i].samples[j]);
    }
    identical.push_back(*to_check);
  }
  if (plans.empty()) return absl::OkStatus();

  // One batch: series index keys, postings of new days, the WAL record.
  rocksdb::WriteBatch batch;
  std::string record;
  const int64_t base_t = plans.front().samples.front().t;
  BeginWalRecord(&record, plans.size(), base_t);
  bool created = false;
  std::string key;
  for (Plan& plan : plans) {
    MemSeries* s = plan.series;
    if (plan.write_index) {
      std::string id;
      PutU64BE(&id, s->id);
      batch.Put(series_cf(), SeriesByLabelBytesKey(tid, s->label_bytes), id);
      batch.Put(series_cf(), SeriesByIdKey(tid, s->id), s->label_bytes);
      created = true;
    }
    for (const Sample& x : plan.samples) {
      const int32_t day = DayOf(x.t);
      if (day <= plan.indexed_day) continue;
      ForEachEncodedLabel(s->label_bytes, [&](std::string_view name, std::string_view value) {
        batch.Put(postings_cf(), PostingKey(tid, day, name, value, s->id), rocksdb::Slice());
      });
      plan.indexed_day = day;
    }
    AppendWalEntry(&record, base_t, tid, s->id, plan.write_index, s->label_bytes,
                   plan.samples.data(), plan.samples.size());
  }
  if (created) {
    std::string next;
    PutU64BE(&next, next_series_id_.load());
    batch.Put(meta_cf(), kMetaNextSeriesId, next);
  }
  batch.Put(wal_cf(), WalKey(seq), record);
  {
    absl::MutexLock lock(&wal_mu_);
    NoteWalRecordLocked(seq, static_cast<int64_t>(8 + record.size()));
  }

  // No lock held: concurrent commits join one RocksDB write group (one fsync).
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync == SyncPolicy::kAlways;
  rocksdb::Status rs = db_->Write(wo, &batch);
  if (!rs.ok()) {
    unreserve(plans);
    absl::MutexLock lock(&wal_mu_);
    inflight_.erase(seq);
    if (auto it = wal_sizes_.find(seq); it != wal_sizes_.end()) {
      wal_bytes_ -= it->second;
      wal_sizes_.erase(it);
    }
    return FromRocks(rs, "write-ahead log");
  }

  // Durable: apply to the head, and seal the chunks that are full. A failed seal keeps the
  // samples in the head (and the WAL), so it does not fail the commit; Compact retries.
  rocksdb::WriteBatch chunks;
  std::vector<SealJob> jobs;
  int64_t appended = 0;
  for (Plan& plan : plans) {
    MemSeries* s = plan.series;
    absl::MutexLock lock(&head_.ShardOf(*s).mu);
    if (s->open.empty() || plan.samples.front().t > s->open.back().t) {
      if (s->open.empty()) s->open.reserve(std::max(options_.max_samples_per_chunk, 1));
      s->open.insert(s->open.end(), plan.samples.begin(), plan.samples.end());
    } else {
      // A commit that reserved later applied first: insert in time order.
      for (const Sample& x : plan.samples) {
        auto pos = std::lower_bound(s->open.begin(), s->open.end(), x.t,
                                    [](const Sample& a, int64_t t) { return a.t < t; });
        if (pos == s->open.end() || pos->t != x.t) s->open.insert(pos, x);
      }
    }
    if (s->open_min_seq == 0 || seq < s->open_min_seq) s->open_min_seq = seq;
    s->last_apply_seq = seq;
    s->last_apply_first_t = plan.samples.front().t;
    if (!s->has_last || plan.samples.back().t > s->last.t) {
      s->last = plan.samples.back();
      s->has_last = true;
    }
    s->last_indexed_day = std::max(s->last_indexed_day, plan.indexed_day);
    s->indexed = true;
    if (--s->inflight == 0) s->inflight_min_t = std::numeric_limits<int64_t>::max();
    appended += static_cast<int64_t>(plan.samples.size());
    NoteTime(plan.samples.front().t);
    NoteTime(plan.samples.back().t);
    SealJob job;
    if (PrepareSealLocked(s, false, &chunks, &job)) jobs.push_back(job);
  }
  samples_appended_ += appended;
  if (!jobs.empty()) {
    // Not synced: the WAL record keeps these samples until a later Compact releases it, and
    // that range deletion lands in RocksDB's log after this write.
    rocksdb::Status cs = db_->Write(rocksdb::WriteOptions(), &chunks);
    for (const SealJob& job : jobs) {
      absl::MutexLock lock(&head_.ShardOf(*job.series).mu);
      FinishSealLocked(job, cs.ok());
    }
  }
  absl::MutexLock lock(&wal_mu_);
  inflight_.erase(seq);
  return absl::OkStatus();
}

}  // namespace tidemark::internal
