// The head checkpoint: DBImpl::Checkpoint writes every open head chunk, as it is, to one file
// beside RocksDB's, so that the WAL records below it can be released however long the chunks
// stay open; DBImpl::LoadCheckpoint reads it back on open, before the WAL that follows it is
// replayed. The file format and the rules that keep it consistent with the sealed chunks are in
// storage/FORMAT.md ("Head checkpoint").
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <bit>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "rocksdb/db.h"
#include "storage/db_impl.h"
#include "storage/keys.h"
#include "storage/rocks_util.h"

namespace tidemark::internal {
namespace {

constexpr char kMagic[8] = {'T', 'M', 'H', 'E', 'A', 'D', 'C', 'K'};
// Version 2: the open chunk's encoder state has its mode (storage/open_chunk.h); version 1 is
// still read.
constexpr uint8_t kVersion = 2;
constexpr char kFileName[] = "HEAD-CHECKPOINT";
constexpr char kTempName[] = "HEAD-CHECKPOINT.tmp";

absl::Status Errno(std::string_view what, const std::string& path) {
  return absl::InternalError(
      absl::StrCat(std::string(what), " ", path, ": ", std::strerror(errno)));
}

// A file written in sections: each is `u32 length (LE)` + bytes, and the running CRC-32 covers
// everything before the trailer.
class SectionWriter {
 public:
  absl::Status Open(const std::string& path) {
    path_ = path;
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) return Errno("create", path);
    return absl::OkStatus();
  }
  ~SectionWriter() {
    if (fd_ >= 0) ::close(fd_);
  }
  absl::Status Write(std::string_view bytes, bool checksummed = true) {
    if (checksummed) {
      crc_ = crc32(crc_, reinterpret_cast<const Bytef*>(bytes.data()),
                   static_cast<uInt>(bytes.size()));
    }
    while (!bytes.empty()) {
      ssize_t n = ::write(fd_, bytes.data(), bytes.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Errno("write", path_);
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return absl::OkStatus();
  }
  absl::Status Section(std::string_view bytes) {
    std::string len;
    for (int i = 0; i < 4; ++i) len.push_back(static_cast<char>((bytes.size() >> (8 * i)) & 0xff));
    if (absl::Status s = Write(len); !s.ok()) return s;
    return Write(bytes);
  }
  // The end marker (a zero-length section) and the CRC, then fsync and close.
  absl::Status Finish() {
    if (absl::Status s = Write(std::string(4, '\0')); !s.ok()) return s;
    std::string crc;
    for (int i = 0; i < 4; ++i) crc.push_back(static_cast<char>((crc_ >> (8 * i)) & 0xff));
    if (absl::Status s = Write(crc, false); !s.ok()) return s;
    if (::fsync(fd_) != 0) return Errno("fsync", path_);
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return Errno("close", path_);
    return absl::OkStatus();
  }

 private:
  std::string path_;
  int fd_ = -1;
  uLong crc_ = crc32(0, nullptr, 0);
};

absl::Status SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("open directory", dir);
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Errno("fsync directory", dir);
  return absl::OkStatus();
}

void PutFixed(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

bool GetFixed(std::string_view* in, int bytes, uint64_t* v) {
  if (in->size() < static_cast<size_t>(bytes)) return false;
  *v = 0;
  for (int i = 0; i < bytes; ++i) *v |= uint64_t{static_cast<uint8_t>((*in)[i])} << (8 * i);
  in->remove_prefix(static_cast<size_t>(bytes));
  return true;
}

uint64_t ZigZag(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }
int64_t UnZigZag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

// One series of a section: what the head needs besides what the series index has.
void SaveSeries(const MemSeries& s, std::string* out) {
  PutVarint(out, s.tenant);
  PutVarint(out, s.id);
  const std::string label_bytes = s.LabelBytes();
  PutVarint(out, label_bytes.size());
  out->append(label_bytes);
  out->push_back(static_cast<char>(s.has_last ? 1 : 0));
  PutVarint(out, ZigZag(s.last.t));
  PutFixed(out, std::bit_cast<uint64_t>(s.last.v), 8);
  PutVarint(out, ZigZag(s.sealed_max_t));
  PutVarint(out, ZigZag(s.last_indexed_day));
  s.open.Save(out);
}

// The series at the front of *in, or nullptr when it is not one.
std::unique_ptr<MemSeries> RestoreSeries(std::string_view* in, int version) {
  uint64_t tenant, id, len, zt, bits, zsealed, zday;
  if (!GetVarint(in, &tenant) || tenant > UINT32_MAX || !GetVarint(in, &id) ||
      !GetVarint(in, &len) || len > in->size() || len > UINT32_MAX) {
    return nullptr;
  }
  std::unique_ptr<MemSeries> s = MemSeries::Make(in->substr(0, len));
  s->tenant = static_cast<uint32_t>(tenant);
  s->id = id;
  in->remove_prefix(len);
  if (in->empty() || static_cast<uint8_t>((*in)[0]) > 1) return nullptr;
  s->has_last = (*in)[0] == 1;
  in->remove_prefix(1);
  if (!GetVarint(in, &zt) || !GetFixed(in, 8, &bits) || !GetVarint(in, &zsealed) ||
      !GetVarint(in, &zday)) {
    return nullptr;
  }
  s->last = Sample{UnZigZag(zt), std::bit_cast<double>(bits)};
  s->sealed_max_t = UnZigZag(zsealed);
  s->last_indexed_day = static_cast<int32_t>(UnZigZag(zday));
  if (!s->open.Restore(in, version) || s->open.empty()) return nullptr;
  return s;
}

}  // namespace

std::string DBImpl::CheckpointPath() const { return options_.path + "/" + kFileName; }

absl::Status DBImpl::Checkpoint() {
  // The caller holds maintenance_mu_: no deletion and no other checkpoint runs meanwhile.
  // 1. No seal starts from now on, and later seals write seal records: replayed after this
  //    checkpoint, they remove from the head what they sealed.
  checkpoint_exists_.store(true);
  seals_blocked_.store(true);
  struct Unblock {
    std::atomic<bool>* flag;
    ~Unblock() { flag->store(false); }
  } unblock{&seals_blocked_};
  // 2. Every commit below `covers` has applied its samples to the head.
  const uint64_t covers = MinInflightSeq();
  const std::string tmp = options_.path + "/" + kTempName;
  SectionWriter out;
  if (absl::Status s = out.Open(tmp); !s.ok()) return s;
  std::string header(kMagic, sizeof(kMagic));
  header.push_back(static_cast<char>(kVersion));
  PutFixed(&header, covers, 8);
  if (absl::Status s = out.Write(header); !s.ok()) return s;
  // 3. Each shard as it is once the seals under way in it have finished.
  std::string section;
  int64_t series = 0;
  for (Head::Shard& shard : head_.shards()) {
    section.clear();
    {
      absl::MutexLock lock(&shard.mu);
      auto no_seal = [&shard]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) {
        return shard.seals == 0;
      };
      shard.mu.Await(absl::Condition(&no_seal));
      for (const MemSeries* s : shard.series) {
        if (s->open.empty()) continue;
        SaveSeries(*s, &section);
        ++series;
      }
    }
    if (section.empty()) continue;
    if (absl::Status s = out.Section(section); !s.ok()) return s;
  }
  // 4. What the copied state relies on (sealed chunks, series index) is durable before the file
  //    replaces the previous one, and the file is before the WAL below it goes.
  rocksdb::Status rs = db_->FlushWAL(/*sync=*/true);
  if (!rs.ok()) return FromRocks(rs, "sync RocksDB log before the head checkpoint");
  if (absl::Status s = out.Finish(); !s.ok()) return s;
  if (::rename(tmp.c_str(), CheckpointPath().c_str()) != 0) return Errno("rename", tmp);
  if (absl::Status s = SyncDir(options_.path); !s.ok()) return s;
  checkpoints_written_.fetch_add(1);
  checkpoint_series_.store(series);
  checkpoint_covers_.store(covers);
  return ReleaseWalBelow(covers);
}

absl::StatusOr<uint64_t> DBImpl::LoadCheckpoint() {
  const std::string path = CheckpointPath();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return 0;
    return Errno("open", path);
  }
  struct CloseOnExit {
    int fd;
    ~CloseOnExit() { ::close(fd); }
  } close_on_exit{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0) return Errno("stat", path);
  const auto file_size = static_cast<uint64_t>(st.st_size);
  auto corrupt = [&path](std::string_view what) {
    return absl::DataLossError(absl::StrCat("head checkpoint ", path, ": ", std::string(what),
                                            " (the WAL below it was released: the samples it "
                                            "held are not recoverable from elsewhere)"));
  };
  // Read section by section: memory for one section at a time, besides the head being built.
  uLong crc = crc32(0, nullptr, 0);
  std::string buf;
  // Reads exactly n bytes into buf (false at end of file); checksummed unless told otherwise.
  auto read = [&](size_t n, bool checksummed = true) -> absl::StatusOr<bool> {
    buf.resize(n);
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::read(fd, buf.data() + got, n - got);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Errno("read", path);
      if (r == 0) return false;
      got += static_cast<size_t>(r);
    }
    if (checksummed) crc = crc32(crc, reinterpret_cast<const Bytef*>(buf.data()), static_cast<uInt>(n));
    return true;
  };
  absl::StatusOr<bool> ok = read(sizeof(kMagic) + 1 + 8);
  if (!ok.ok()) return ok.status();
  if (!*ok || std::memcmp(buf.data(), kMagic, sizeof(kMagic)) != 0) {
    return corrupt("not a head checkpoint");
  }
  const int version = static_cast<uint8_t>(buf[sizeof(kMagic)]);
  if (version < 1 || version > kVersion) {
    return corrupt(absl::StrCat("unknown version ", static_cast<int>(buf[sizeof(kMagic)])));
  }
  std::string_view header(buf);
  header.remove_prefix(sizeof(kMagic) + 1);
  uint64_t covers = 0;
  GetFixed(&header, 8, &covers);
  int64_t restored = 0;
  std::vector<LabelView> views;
  for (;;) {
    ok = read(4);
    if (!ok.ok()) return ok.status();
    if (!*ok) return corrupt("truncated");
    std::string_view lenbytes(buf);
    uint64_t len = 0;
    GetFixed(&lenbytes, 4, &len);
    if (len == 0) break;
    if (len > file_size) return corrupt("truncated section");
    ok = read(len);
    if (!ok.ok()) return ok.status();
    if (!*ok) return corrupt("truncated section");
    std::string_view section(buf);
    while (!section.empty()) {
      std::unique_ptr<MemSeries> s = RestoreSeries(&section, version);
      if (s == nullptr) return corrupt("bad series");
      views.clear();
      const std::string label_bytes = s->LabelBytes();  // `views` point into it
      if (!DecodeLabelViews(label_bytes, &views)) return corrupt("bad labels");
      const std::span<const LabelView> labels(views);
      s->hash = SeriesHash(s->tenant, LabelsHash(labels));
      s->indexed = true;
      s->has_tail = s->has_last;
      s->tail = s->last;
      s->open_min_seq = covers;  // its open samples need no record below `covers`
      NoteTime(s->open.front().t);
      NoteTime(s->open.back().t);
      Head::Shard& shard = head_.ShardFor(s->hash);
      absl::MutexLock lock(&shard.mu);
      if (Head::FindLocked(shard, Head::Key{s->hash, s->tenant, labels}) != nullptr) {
        return corrupt("a series twice");
      }
      Head::InsertLocked(shard, std::move(s));
      ++restored;
    }
  }
  const uLong want = crc;
  ok = read(4, /*checksummed=*/false);
  if (!ok.ok()) return ok.status();
  if (!*ok) return corrupt("truncated");
  std::string_view crcbytes(buf);
  uint64_t got = 0;
  GetFixed(&crcbytes, 4, &got);
  if (got != want) return corrupt("checksum mismatch");
  ok = read(1, false);
  if (!ok.ok()) return ok.status();
  if (*ok) return corrupt("bytes after the checksum");
  checkpoint_exists_.store(true);
  checkpoint_series_.store(restored);
  checkpoint_covers_.store(covers);
  return covers;
}

absl::Status DBImpl::RemoveCheckpoint() {
  if (!checkpoint_exists_.load()) return absl::OkStatus();
  if (::unlink(CheckpointPath().c_str()) != 0 && errno != ENOENT) {
    return Errno("remove", CheckpointPath());
  }
  if (absl::Status s = SyncDir(options_.path); !s.ok()) return s;
  checkpoint_exists_.store(false);
  return absl::OkStatus();
}

}  // namespace tidemark::internal
