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
// sample is kept plain; each later one as a Gorilla-style timestamp delta-of-delta (zigzag, in a
// prefix-coded bucket: `0`; `10`+7 bits; `110`+12; `1110`+20; `1111`+64) and value XOR with the
// previous value (`0` for equal; `10` + the meaningful bits when they fit the previous window of
// leading and trailing zeros; `11` + 6 bits leading zeros + 6 bits (length - 1) + the bits).
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
  void Save(std::string* out) const;
  bool Restore(std::string_view* in);

 private:
  void PutBits(uint64_t value, int n);

  // Whole bytes of the bit stream, grown by a quarter (one per active series: little slack).
  std::vector<char> bytes_;
  uint64_t acc_ = 0;      // pending bits (right-aligned), not yet a whole byte
  uint8_t acc_bits_ = 0;  // < 8
  uint8_t lead_ = 0xff;   // the previous value window (0xff: none yet)
  uint8_t trail_ = 0;
  uint32_t count_ = 0;
  int64_t delta_ = 0;  // last_.t - the timestamp before it
  Sample first_;
  Sample last_;
};

}  // namespace tidemark::internal

#endif  // TIDEMARK_STORAGE_OPEN_CHUNK_H_
