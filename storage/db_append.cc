// DBImpl's write path: the appender and the commit.
//
// Per sample, Append hashes the labels once (LabelsHash), finds the series in the head by that
// hash (no key string, no Labels copy for a known series), checks the sample against the
// series' tail and keeps the series pointer for Commit, which does not look it up again. A
// series' first sample in the appender, when newer than its tail (nearly always), is reserved
// under the lock of that lookup: the commit then visits the series once, to apply it.
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
  AppenderImpl(DBImpl* db, std::string_view tenant) : db_(db), tenant_(tenant) {
    // A remote-write request carries a few hundred series: no rehash on the way there.
    index_.reserve(256);
    pending_.reserve(256);
  }
  ~AppenderImpl() override { Rollback(); }

  absl::Status Append(const Labels& labels, int64_t t_ms, double v) override {
    return AppendSample(&labels, Sample{t_ms, v});
  }

  absl::Status Append(std::span<const LabelView> labels, int64_t t_ms, double v) override {
    return AppendSample(labels, Sample{t_ms, v});
  }

  absl::Status Commit() override {
    absl::Status s = count_ == 0 ? absl::OkStatus() : db_->CommitPending(tenant_, pending_);
    Rollback();
    return s;
  }

  void Rollback() override {
    for (PendingSeries& p : pending_) {
      if (p.series == nullptr) continue;
      if (p.reserved) db_->Unreserve(p.series, p.reservation);
      else db_->Unpin(p.series);
    }
    pending_.clear();
    index_.clear();
    count_ = 0;
  }

  size_t pending() const override { return count_; }

  void Reserve(size_t series) override {
    index_.reserve(series);
    pending_.reserve(series);
  }

 private:
  // The series' samples in the request so far, then the head: the series is pinned while the
  // appender holds it. Labels are copied only for a series the head does not hold.
  absl::Status AppendSample(LabelsArg labels, const Sample& sample) {
    const uint64_t lh = labels.Hash();
    PendingSeries* p = FindPending(lh, labels);
    // With an out-of-order window, Commit sorts each series' samples and decides on the late
    // ones (a read of what is stored at their time); without one they are refused here.
    const bool late_ok = db_->options().out_of_order_window_ms > 0;
    if (p != nullptr && !p->samples.empty()) {
      Verdict verdict = CheckSample(true, p->samples.back(), sample);
      if (verdict == Verdict::kOutOfOrder && late_ok) verdict = Verdict::kAccept;
      if (verdict == Verdict::kIgnore) return absl::OkStatus();
      if (verdict != Verdict::kAccept) {
        return RejectFor(verdict, labels.ToLabels().ToString(), sample);
      }
      p->samples.push_back(sample);
      ++count_;
      return absl::OkStatus();
    }
    if (!tenant_id_.has_value()) tenant_id_ = db_->FindTenant(tenant_);
    MemSeries* series = nullptr;
    Reservation reservation;
    bool reserved = false;
    if (tenant_id_.has_value()) {
      Verdict verdict = Verdict::kAccept;
      // The series' first sample here is reserved when it can be (see PendingSeries::reserved).
      absl::StatusOr<MemSeries*> found = db_->FindSeriesForAppend(
          *tenant_id_, lh, labels, sample, &verdict, p == nullptr ? &reservation : nullptr,
          &reserved);
      if (!found.ok()) return found.status();
      series = *found;
      if (series != nullptr && verdict == Verdict::kOutOfOrder) {
        if (late_ok) {
          verdict = Verdict::kAccept;
        } else {
          absl::StatusOr<StoredKind> stored = db_->StoredAt(series, sample);
          if (!stored.ok()) {
            db_->Unpin(series);
            return stored.status();
          }
          if (*stored == StoredKind::kIdentical) verdict = Verdict::kIgnore;
        }
      }
      if (series != nullptr && verdict != Verdict::kAccept) {
        db_->Unpin(series);
        if (verdict == Verdict::kIgnore) return absl::OkStatus();
        return RejectFor(verdict, labels.ToLabels().ToString(), sample);
      }
    }
    if (p == nullptr) {
      // A series in the head was validated when it was made; only new ones are checked.
      Labels copy;
      if (series == nullptr) {
        copy = labels.ToLabels();
        absl::Status valid = Labels::Validate(copy.items());
        if (!valid.ok()) {
          return StatusOf(RejectReason::kInvalidLabels, std::string(valid.message()));
        }
      }
      index_.emplace(lh, pending_.size());
      pending_.emplace_back();
      p = &pending_.back();
      p->labels_hash = lh;
      p->series = series;
      if (series == nullptr) p->labels = std::move(copy);
      p->reserved = reserved;
      if (reserved) p->reservation = reservation;
    } else if (series != nullptr) {
      // Pinned again by the lookup above; the pending entry holds one pin.
      if (p->series == nullptr) p->series = series;
      else db_->Unpin(series);
    }
    p->samples.push_back(sample);
    ++count_;
    return absl::OkStatus();
  }

  static bool Same(const PendingSeries& p, const LabelsArg& labels) {
    return p.series != nullptr ? p.series->LabelsEqual(labels) : labels == p.labels;
  }

  PendingSeries* FindPending(uint64_t lh, const LabelsArg& labels) {
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

namespace {

// Reserves `x` (newer than the tail) in s for an appender; r learns how to undo it.
void ReserveLocked(MemSeries* s, const Sample& x, Reservation* r) {
  r->sample = x;
  r->prev_has_tail = s->has_tail;
  r->prev_tail = s->tail;
  r->write_index = !s->indexed;
  r->indexed_day = s->last_indexed_day;
  s->has_tail = true;
  s->tail = x;
  if (s->inflight++ == 0) s->inflight_min_t = x.t;
  else s->inflight_min_t = std::min(s->inflight_min_t, x.t);
}

// True when the series' tail is stored, not only reserved by an appender or a commit in flight
// (a sample equal to it may be ignored as a resend only then).
bool TailStoredLocked(const MemSeries& s) { return s.has_last && s.last.t == s.tail.t; }

// Holds s, found for an appender's sample (lock held): reserves the sample when it is newer than
// the tail and `reservation` asks for it (*reserved), else pins s. *verdict is the sample's
// against the tail; equal to a sample another request is writing (not stored yet), it is
// kAccept: the commit decides.
void HoldForAppendLocked(MemSeries* s, const Sample& sample, Verdict* verdict,
                         Reservation* reservation, bool* reserved) {
  *verdict = CheckSample(s->has_tail, s->tail, sample);
  if (reservation != nullptr && *verdict == Verdict::kAccept) {
    ReserveLocked(s, sample, reservation);
    *reserved = true;
    return;
  }
  ++s->pins;
  if (*verdict == Verdict::kIgnore && !TailStoredLocked(*s)) *verdict = Verdict::kAccept;
}

// Gives up a reservation that moved the tail to `reserved_t` from `prev` (had_tail). The last
// one gone, the tail is the newest stored sample again; otherwise it goes back to `prev` if no
// later reservation moved it (`prev` may be another reservation's, itself given up since: the
// tail is then newer than it need be until the series has no reservation left).
void ReleaseReservationLocked(MemSeries* s, int64_t reserved_t, bool had_tail,
                              const Sample& prev) {
  if (--s->inflight == 0) {
    s->inflight_min_t = std::numeric_limits<int64_t>::max();
    s->has_tail = s->has_last;
    s->tail = s->last;
  } else if (s->has_tail && s->tail.t == reserved_t) {
    s->has_tail = had_tail;
    s->tail = prev;
  }
}

}  // namespace

absl::StatusOr<MemSeries*> DBImpl::FindSeriesForAppend(uint32_t tenant, uint64_t labels_hash,
                                                        LabelsArg labels, const Sample& sample,
                                                        Verdict* verdict,
                                                        Reservation* reservation,
                                                        bool* reserved) {
  *reserved = false;
  if (closed_.load()) return ClosedError();
  const uint64_t hash = SeriesHash(tenant, labels_hash);
  const Head::Key key{hash, tenant, labels};
  Head::Shard& shard = head_.ShardFor(hash);
  {
    absl::MutexLock lock(&shard.mu);
    if (MemSeries* s = Head::FindLocked(shard, key); s != nullptr) {
      HoldForAppendLocked(s, sample, verdict, reservation, reserved);
      return s;
    }
  }
  // Not in the head: looked up in RocksDB, which needs the labels as a Labels.
  Labels copy;
  if (labels.labels == nullptr) copy = labels.ToLabels();
  absl::StatusOr<MemSeries*> s = LoadSeriesPinned(
      tenant, hash, labels.labels != nullptr ? *labels.labels : copy, /*create=*/false);
  if (!s.ok() || *s == nullptr) return s;
  absl::MutexLock lock(&shard.mu);
  --(*s)->pins;  // held again below, by a pin or a reservation
  HoldForAppendLocked(*s, sample, verdict, reservation, reserved);
  return s;
}

void DBImpl::Unreserve(MemSeries* s, const Reservation& r) {
  absl::MutexLock lock(&head_.ShardOf(*s).mu);
  ReleaseReservationLocked(s, r.sample.t, r.prev_has_tail, r.prev_tail);
}

absl::StatusOr<MemSeries*> DBImpl::LoadSeriesPinned(uint32_t tenant, uint64_t hash,
                                                    const Labels& labels, bool create) {
  const Head::Key key{hash, tenant, &labels};
  Head::Shard& shard = head_.ShardFor(hash);
  std::string label_bytes;
  EncodeLabels(labels, &label_bytes);
  std::unique_ptr<MemSeries> series = MemSeries::Make(label_bytes);
  series->tenant = tenant;
  series->hash = hash;
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), series_cf(),
                               SeriesByLabelBytesKey(tenant, label_bytes), &value);
  if (s.ok()) {
    if (value.size() != 8) {
      return absl::DataLossError(absl::StrCat("series id of ", labels.ToString(), " has ",
                                              value.size(), " bytes"));
    }
    series->id = GetU64BE(value);
    series->indexed = true;
    series->bounded = true;  // it may have an end time from before it left the head
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

bool DBImpl::CopyHeadSamples(uint32_t tenant, uint64_t hash, uint64_t id, int64_t mint,
                             int64_t maxt, std::vector<Sample>* out, int64_t* sealed_max_t) {
  Head::Shard& shard = head_.ShardFor(hash);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.series.find(Head::IdKey{hash, tenant, id});
  if (it == shard.series.end()) return false;
  (*it)->open.CopyRange(mint, maxt, out);
  // A seal under way writes chunks newer than the sealed time: they hold what is still open.
  *sealed_max_t = (*it)->sealing ? std::numeric_limits<int64_t>::max() : (*it)->sealed_max_t;
  return true;
}

absl::StatusOr<StoredKind> DBImpl::StoredAt(MemSeries* series, const Sample& sample) {
  auto kind = [&sample](const Sample& at) {
    return at == sample ? StoredKind::kIdentical : StoredKind::kDifferent;
  };
  {
    absl::MutexLock lock(&head_.ShardOf(*series).mu);
    if (std::optional<Sample> at = series->open.Find(sample.t)) return kind(*at);
    if (sample.t > series->sealed_max_t) return StoredKind::kNone;
  }
  // Sealed: the chunk that starts at or before the timestamp, in its day.
  const std::string prefix = ChunkSeriesPrefix(series->tenant, DayOf(sample.t), series->id);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), chunks_cf()));
  it->SeekForPrev(ChunkKey(series->tenant, series->id, sample.t));
  if (!it->status().ok()) return FromRocks(it->status(), "find chunk");
  if (!it->Valid() || it->key().size() != kChunkKeySize ||
      std::string_view(it->key().data(), prefix.size()) != prefix) {
    return StoredKind::kNone;
  }
  ChunkIterator ci(std::string_view(it->value().data(), it->value().size()));
  const bool found = ci.Seek(sample.t) && ci.At().t == sample.t;
  if (!ci.status().ok()) {
    return absl::DataLossError(
        absl::StrCat("chunk of series ", series->id, ": ", ci.status().message()));
  }
  return found ? kind(ci.At()) : StoredKind::kNone;
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
  // A reserved series with more samples after the reserved one: the commit checks them all.
  bool any_reserved = false;
  for (PendingSeries& p : pending) {
    if (!p.reserved) continue;
    if (p.samples.size() == 1) {
      any_reserved = true;
      continue;
    }
    MemSeries* s = p.series;
    absl::MutexLock lock(&head_.ShardOf(*s).mu);
    ++s->pins;
    ReleaseReservationLocked(s, p.reservation.sample.t, p.reservation.prev_has_tail,
                             p.reservation.prev_tail);
    p.reserved = false;
  }

  struct Plan {
    MemSeries* series = nullptr;
    size_t pending_index = 0;
    absl::InlinedVector<Sample, 2> samples;  // accepted in order (newer than the tail), increasing
    absl::InlinedVector<Sample, 1> ooo;      // accepted out of order (within the window), increasing
    bool prev_has_tail = false;
    Sample prev_tail;
    bool write_index = false;
    int32_t indexed_day = std::numeric_limits<int32_t>::min();
    // Reserved by the appender (which undoes it unless the apply took it), not pinned.
    bool appender_reserved = false;
  };
  std::vector<Plan> plans;
  plans.reserve(pending.size());
  const int64_t window = options_.out_of_order_window_ms;
  if (window > 0) {
    // The appender kept the request's order: classify samples in time order.
    for (PendingSeries& p : pending) {
      std::stable_sort(p.samples.begin(), p.samples.end(),
                       [](const Sample& a, const Sample& b) { return a.t < b.t; });
    }
  }
  // What storage holds at the time of each out-of-order sample (pending index, sample index),
  // read with no lock held.
  absl::flat_hash_map<std::pair<size_t, size_t>, StoredKind> stored;
  auto unreserve = [this](std::vector<Plan>& ps) {
    for (Plan& plan : ps) {
      if (plan.appender_reserved) continue;
      MemSeries* s = plan.series;
      absl::MutexLock lock(&head_.ShardOf(*s).mu);
      ReleaseReservationLocked(
          s, plan.samples.empty() ? std::numeric_limits<int64_t>::min() : plan.samples.back().t,
          plan.prev_has_tail, plan.prev_tail);
    }
    ps.clear();
  };

  // Check and reserve the samples of every series the appender did not reserve, then take the
  // WAL sequence number, all under reserve_mu_ (memory only). A sample older than a series' tail
  // needs a read of what is stored at its time (a resent sample is ignored; within the
  // out-of-order window a new one is accepted): those reads are done with no lock held, and the
  // reservation starts over.
  uint64_t seq = 0;
  for (;;) {
    std::vector<std::pair<size_t, size_t>> to_check;
    absl::Status reject;
    {
      absl::MutexLock reserve(&reserve_mu_);
      const int64_t newest = max_time_.load();
      // Out-of-order samples at or after this time are accepted.
      int64_t ooo_floor = std::numeric_limits<int64_t>::max();
      if (window > 0 && newest != std::numeric_limits<int64_t>::min()) {
        ooo_floor = newest < std::numeric_limits<int64_t>::min() + window
                        ? std::numeric_limits<int64_t>::min()
                        : newest - window;
      }
      for (size_t i = 0; i < pending.size() && reject.ok(); ++i) {
        PendingSeries& p = pending[i];
        if (p.samples.empty() || p.reserved) continue;
        MemSeries* s = p.series;
        absl::MutexLock lock(&head_.ShardOf(*s).mu);
        Plan plan;
        plan.series = s;
        plan.pending_index = i;
        bool has = s->has_tail;
        Sample last = s->tail;
        bool unchecked = false;
        for (size_t j = 0; j < p.samples.size(); ++j) {
          const Sample& x = p.samples[j];
          Verdict v = CheckSample(has, last, x);
          if (v == Verdict::kIgnore && plan.samples.empty() && !TailStoredLocked(*s)) {
            // Equal to a sample another request has reserved and not yet stored: ignored now, it
            // would be lost if that request failed. The sender retries (503) once it has ended.
            reject = absl::UnavailableError(
                absl::StrCat("series ", Describe(p), " timestamp ", x.t,
                             ": the same sample is being written by another request; retry"));
            break;
          }
          if (v == Verdict::kOutOfOrder) {
            if (!plan.ooo.empty() && plan.ooo.back().t == x.t) {
              v = plan.ooo.back() == x ? Verdict::kIgnore : Verdict::kDuplicate;
            } else if (auto c = stored.find({i, j}); c == stored.end()) {
              to_check.emplace_back(i, j);
              unchecked = true;
              continue;
            } else if (c->second == StoredKind::kIdentical) {
              v = Verdict::kIgnore;
            } else if (x.t >= ooo_floor) {
              if (c->second == StoredKind::kNone) {
                plan.ooo.push_back(x);
                continue;
              }
              v = Verdict::kDuplicate;
            }
          }
          if (v == Verdict::kIgnore) continue;
          if (v != Verdict::kAccept) {
            reject = RejectFor(v, Describe(p), x);
            break;
          }
          plan.samples.push_back(x);
          has = true;
          last = x;
        }
        if (unchecked || !reject.ok() || (plan.samples.empty() && plan.ooo.empty())) continue;
        plan.prev_has_tail = s->has_tail;
        plan.prev_tail = s->tail;
        if (!plan.samples.empty()) {
          s->has_tail = true;
          s->tail = plan.samples.back();
        }
        int64_t min_t = plan.samples.empty() ? plan.ooo.front().t : plan.samples.front().t;
        if (!plan.ooo.empty()) min_t = std::min(min_t, plan.ooo.front().t);
        if (s->inflight++ == 0) s->inflight_min_t = min_t;
        else s->inflight_min_t = std::min(s->inflight_min_t, min_t);
        plan.write_index = !s->indexed;
        plan.indexed_day = s->last_indexed_day;
        plans.push_back(std::move(plan));
      }
      if (to_check.empty() && reject.ok() && (!plans.empty() || any_reserved)) {
        absl::MutexLock lock(&wal_mu_);
        seq = next_wal_seq_++;
        inflight_.insert(seq);
      }
      if (!to_check.empty() || !reject.ok()) unreserve(plans);
    }
    if (!reject.ok()) return reject;
    if (to_check.empty()) break;
    for (auto [i, j] : to_check) {
      absl::StatusOr<StoredKind> kind = StoredAt(pending[i].series, pending[i].samples[j]);
      if (!kind.ok()) return kind.status();
      stored[{i, j}] = *kind;
    }
  }
  for (size_t i = 0; i < pending.size() && any_reserved; ++i) {
    const PendingSeries& p = pending[i];
    if (!p.reserved) continue;
    Plan& plan = plans.emplace_back();
    plan.series = p.series;
    plan.pending_index = i;
    plan.samples.push_back(p.reservation.sample);
    plan.prev_has_tail = p.reservation.prev_has_tail;
    plan.prev_tail = p.reservation.prev_tail;
    plan.write_index = p.reservation.write_index;
    plan.indexed_day = p.reservation.indexed_day;
    plan.appender_reserved = true;
  }
  if (plans.empty()) return absl::OkStatus();

  // One batch: series index keys, postings of new days, the WAL record.
  rocksdb::WriteBatch batch;
  std::string record;
  record.reserve(16 + plans.size() * 32);  // a series with one sample takes ~16 bytes
  size_t entries = 0;
  for (const Plan& plan : plans) {
    entries += (plan.samples.empty() ? 0 : 1) + (plan.ooo.empty() ? 0 : 1);
  }
  const Plan& first = plans.front();
  const int64_t base_t = first.samples.empty() ? first.ooo.front().t : first.samples.front().t;
  BeginWalRecord(&record, entries, base_t);
  bool created = false;
  std::string label_bytes;
  for (Plan& plan : plans) {
    MemSeries* s = plan.series;
    // The labels are needed as bytes only where index keys or labels are written.
    bool new_day = false;
    for (const Sample& x : plan.samples) new_day |= DayOf(x.t) > plan.indexed_day;
    if (plan.write_index || new_day || !plan.ooo.empty()) {
      label_bytes.clear();
      s->AppendLabelBytes(&label_bytes);
    }
    if (plan.write_index) {
      std::string id;
      PutU64BE(&id, s->id);
      batch.Put(series_cf(), SeriesByLabelBytesKey(tid, label_bytes), id);
      batch.Put(series_cf(), SeriesByIdKey(tid, s->id), label_bytes);
      created = true;
    }
    auto put_postings = [&](int32_t day) {
      ForEachEncodedLabel(label_bytes, [&](std::string_view name, std::string_view value) {
        batch.Put(postings_cf(), PostingKey(tid, day, name, value, s->id), rocksdb::Slice());
      });
    };
    for (const Sample& x : plan.samples) {
      const int32_t day = DayOf(x.t);
      if (day <= plan.indexed_day) continue;
      put_postings(day);
      plan.indexed_day = day;
    }
    // Late samples may fall on days the series has no postings for (puts are idempotent).
    int32_t ooo_day = std::numeric_limits<int32_t>::min();
    for (const Sample& x : plan.ooo) {
      const int32_t day = DayOf(x.t);
      if (day == ooo_day || day == plan.indexed_day) continue;
      put_postings(day);
      ooo_day = day;
    }
    bool labels_written = false;
    if (!plan.samples.empty()) {
      AppendWalEntry(&record, base_t, tid, s->id, plan.write_index, label_bytes,
                     /*out_of_order=*/false, plan.samples.data(), plan.samples.size());
      labels_written = plan.write_index;
    }
    if (!plan.ooo.empty()) {
      AppendWalEntry(&record, base_t, tid, s->id, plan.write_index && !labels_written,
                     label_bytes, /*out_of_order=*/true, plan.ooo.data(), plan.ooo.size());
    }
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
  // Late samples older than the series' sealed chunks: merged into them below.
  std::vector<std::pair<MemSeries*, std::vector<Sample>>> merges;
  int64_t appended = 0;
  for (Plan& plan : plans) {
    MemSeries* s = plan.series;
    Head::Shard& shard = head_.ShardOf(*s);
    absl::MutexLock lock(&shard.mu);
    bool keep_pin = false;
    if (s->bounded) {
      // Written again: its end time no longer holds (before any sample becomes visible).
      bounds_.Clear(s->id);
      s->bounded = false;
    }
    if (!plan.ooo.empty()) {
      // A seal in progress would drop what is inserted at or before its end: wait for it.
      auto not_sealing = [s]() { return !s->sealing; };
      shard.mu.Await(absl::Condition(&not_sealing));
      std::vector<Sample> older;
      for (const Sample& x : plan.ooo) {
        if (x.t <= s->sealed_max_t) {
          older.push_back(x);
          continue;
        }
        s->open.Insert(x);
      }
      s->last_apply_seq = std::min(s->last_apply_seq, seq);  // see MemSeries::last_apply_seq
      if (!older.empty()) {
        merges.emplace_back(s, std::move(older));
        keep_pin = true;  // MergeLateSamples uses the series after the apply
      }
      NoteTime(plan.ooo.front().t);
      appended += static_cast<int64_t>(plan.ooo.size());
    }
    if (!plan.samples.empty()) {
      if (s->open.empty() || plan.samples.front().t > s->open.back().t) {
        for (const Sample& x : plan.samples) s->open.Append(x);
        s->last_apply_seq = seq;
        s->last_apply_first_t = plan.samples.front().t;
      } else {
        // A commit that reserved later applied first: insert in time order.
        for (const Sample& x : plan.samples) s->open.Insert(x);
        s->last_apply_seq = std::min(s->last_apply_seq, seq);
      }
      if (!s->has_last || plan.samples.back().t > s->last.t) {
        s->last = plan.samples.back();
        s->has_last = true;
      }
      appended += static_cast<int64_t>(plan.samples.size());
      NoteTime(plan.samples.front().t);
      NoteTime(plan.samples.back().t);
    }
    if (!s->open.empty() && (s->open_min_seq == 0 || seq < s->open_min_seq)) {
      s->open_min_seq = seq;
    }
    s->last_indexed_day = std::max(s->last_indexed_day, plan.indexed_day);
    s->indexed = true;
    if (--s->inflight == 0) s->inflight_min_t = std::numeric_limits<int64_t>::max();
    SealJob job;
    if (PrepareSealLocked(s, false, &chunks, &job)) jobs.push_back(job);
    if (plan.appender_reserved) {
      // Taken (its inflight count is dropped above): the appender no longer holds the series.
      pending[plan.pending_index].reserved = false;
      pending[plan.pending_index].series = nullptr;
    } else if (!keep_pin) {
      // The appender's pin, dropped here rather than under another lock after the commit (a
      // seal under way keeps the series in the head by itself).
      --s->pins;
      pending[plan.pending_index].series = nullptr;
    }
  }
  samples_appended_ += appended;
  if (!jobs.empty()) {
    // Not synced: the WAL record keeps these samples until a later Compact releases it, and
    // that range deletion lands in RocksDB's log after this write.
    AddSealRecord(jobs, &chunks);
    rocksdb::Status cs = WriteChunks(rocksdb::WriteOptions(), &chunks);
    for (const SealJob& job : jobs) {
      absl::MutexLock lock(&head_.ShardOf(*job.series).mu);
      FinishSealLocked(job, cs.ok());
    }
  }
  // A failed merge fails the commit (a retry of the same samples merges them again).
  absl::Status merged = MergeLateSamples(merges);
  absl::MutexLock lock(&wal_mu_);
  inflight_.erase(seq);
  return merged;
}

}  // namespace tidemark::internal
