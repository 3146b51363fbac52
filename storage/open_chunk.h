// OpenChunk: the samples of a series' open (not yet sealed) head chunk, kept encoded.
//
// The head holds one open chunk per active series, so its size is most of the head's memory:
// 16 bytes per sample as plain `Sample`s (about 1.9 KB for a full 120-sample chunk), 1 to 3 bytes
// encoded. Samples are kept in increasing time order, bit for bit (NaN payloads and stale
// markers included). Appending a newer sample encodes only that sample; anything else (a sample
// inserted in the middle, erasing) decodes, edits and encodes again, which the head does only for
// late samples, seals and deletions.
//
// The encoding lives in memory and in the head checkpoint (sealed chunks use storage/chunk.h): the first
// sample is kept plain; each later one as a timestamp delta-of-delta and a value, both bit
// packed. A zigzag integer z is written in prefix-coded buckets: `0` for z = 0, else `10` + w0
// bits, `110` + w1, `1110` + w2, `1111` + 64. Timestamps: the delta-of-delta with widths
// 5, 12, 20 (a scrape jittered by a few ms takes 7 bits). Values, in one of two modes chosen
// when the chunk starts:
// - kInt, while every value is an integer below 2^53 in magnitude (counters, byte counts,
//   histogram buckets): the delta-of-delta of the values as integers, widths 6, 12, 20.
//   A value that is not such an integer re-encodes the chunk as kXor first.
// - kXor, Gorilla-style: XOR with the previous value's bits (`0` for equal; `10` + the
//   meaningful bits when they fit the previous window of leading and trailing zeros; `11` +
//   6 bits leading zeros + 6 bits (length - 1) + the bits).
// kXorV1 is kXor with timestamp widths 7, 12, 20: version 1 checkpoints hold it, and a chunk
// read from one goes on in it until it is re-encoded.
// Not thread-safe (the head's shard lock guards it). Internal to storage/.
#ifndef TIDEMARK_STORAGE_OPEN_CHUNK_H_
#define TIDEMARK_STORAGE_OPEN_CHUNK_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/sample.h"

namespace tidemark::internal {

struct OpenChunkBuckets;

class OpenChunk {
 public:
  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  // The oldest and newest sample; only when not empty.
  const Sample& front() const { return first_; }
  const Sample& back() const { return last_; }

  // Adds `s`, newer than back() (or the first sample).
  void Append(const Sample& s);
  // Adds `s` at its place in time order; false (and nothing changes) when a sample with that
  // timestamp is there already.
  bool Insert(const Sample& s);

  // All samples, in order, appended to *out.
  void Decode(std::vector<Sample>* out) const;
  // The samples in [mint, maxt], appended to *out.
  void CopyRange(int64_t mint, int64_t maxt, std::vector<Sample>* out) const;
  // The sample at timestamp t, if there is one.
  std::optional<Sample> Find(int64_t t) const;

  // Removes the samples at or before t / in [mint, maxt]. Emptied, it releases its memory.
  void EraseThrough(int64_t t);
  void EraseRange(int64_t mint, int64_t maxt);
  // Replaces the content with `samples` (increasing timestamps).
  void Assign(const std::vector<Sample>& samples);
  void Clear();

  // Heap bytes owned.
  int64_t MemoryBytes() const { return static_cast<int64_t>(bytes_.capacity()); }

  // The encoder's whole state, as is (for the head checkpoint, storage/FORMAT.md), appended to
  // *out; Restore reads it back from the front of *in (false when it is not such a state).
  // `version`: of the checkpoint it was saved in (1 or 2; Save writes 2).
  void Save(std::string* out) const;
  bool Restore(std::string_view* in, int version);

 private:
  enum Mode : uint8_t { kXorV1 = 0, kXor = 1, kInt = 2 };

  void PutBits(uint64_t value, int n);
  void PutBucketed(uint64_t zz, const OpenChunkBuckets& b);
  void Start(const Sample& s, Mode mode);
  // Encodes s after last_ in the current mode; m: s.v as an integer, in kInt.
  void Put(const Sample& s, int64_t m);
  // Replaces the content with `samples` (increasing timestamps; integers if kInt).
  void Encode(const std::vector<Sample>& samples, Mode mode);

  // Whole bytes of the bit stream, grown by a quarter (one per active series: little slack).
  std::vector<char> bytes_;
  uint64_t acc_ = 0;      // pending bits (right-aligned), not yet a whole byte
  uint8_t acc_bits_ = 0;  // < 8
  uint8_t lead_ = 0xff;   // the previous value window (0xff: none yet)
  uint8_t trail_ = 0;
  Mode mode_ = kXor;
  uint32_t count_ = 0;
  int64_t delta_ = 0;   // last_.t - the timestamp before it
  int64_t vdelta_ = 0;  // kInt: last_.v - the value before it, as integers
  Sample first_;
  Sample last_;
};

}  // namespace tidemark::internal

#endif  // TIDEMARK_STORAGE_OPEN_CHUNK_H_
