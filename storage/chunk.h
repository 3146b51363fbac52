// Chunk codec: a run of one series' samples encoded as two columns, timestamps and values.
//
// A chunk is self-describing: a header names the encoding chosen for each column, so the
// encoder picks the cheapest encoding that fits each chunk (regular-interval timestamps, a
// constant value, ...). The byte layout is in storage/FORMAT.md. Encoding ids are never
// renumbered. Stateless functions; thread-safe.
#ifndef TIDEMARK_STORAGE_CHUNK_H_
#define TIDEMARK_STORAGE_CHUNK_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/bit_stream.h"
#include "storage/packed_ints.h"
#include "storage/querier.h"
#include "storage/sample.h"

namespace tidemark {

enum class TimestampEncoding : uint8_t {
  kDeltaOfDelta = 1,  // Gorilla-style delta-of-delta, bit-packed
  kRegular = 2,       // first timestamp + one interval: every delta is equal
  kPacked = 3,        // offsets from a regular grid as an integer column (jittered scrapes)
};

enum class ValueEncoding : uint8_t {
  kXor = 1,        // Gorilla XOR of consecutive float bits
  kConstant = 2,   // every value has the same bits
  kDecimal = 3,    // decimals in disguise: round(v * 10^e) as an integer column, plus
                   // exceptions (NaN, stale markers, ±Inf, -0.0, noise) kept raw
  kFloatBits = 4,  // the float bits read as integers, as an integer column
};

// Limits that decoding enforces on untrusted bytes.
inline constexpr uint32_t kMaxSamplesPerChunk = 1 << 16;

// Appends the encoding of `samples` (strictly increasing timestamps, at least one sample) to
// `out`. Floats are kept bit for bit. InvalidArgument for an empty or unordered input.
absl::Status EncodeChunk(std::span<const Sample> samples, std::string* out);

// Reads the header of an encoded chunk without decoding it.
struct ChunkInfo {
  uint32_t num_samples = 0;
  int64_t min_time_ms = 0;
  int64_t max_time_ms = 0;
  TimestampEncoding timestamps = TimestampEncoding::kDeltaOfDelta;
  ValueEncoding values = ValueEncoding::kXor;
};
absl::StatusOr<ChunkInfo> ReadChunkInfo(std::string_view chunk);

// An iterator over an encoded chunk. `chunk` must outlive the iterator. Corrupt bytes end the
// iteration with DataLoss in status(), never a crash or a read out of bounds.
class ChunkIterator : public SampleIterator {
 public:
  explicit ChunkIterator(std::string_view chunk = {});
  // Restarts on another chunk, reusing this iterator's memory.
  void Reset(std::string_view chunk);

  bool Next() override;
  bool Seek(int64_t t) override;
  Sample At() const override { return cur_; }
  absl::Status status() const override { return status_; }

 private:
  bool Fail(std::string_view what);
  bool DecodeHeader();
  bool ReadTimestamp();
  bool ReadDeltaOfDelta(uint64_t prev, uint64_t* next);
  bool ReadValue();
  bool CheckColumnsConsumed();
  bool DecodeDecimalHeader(std::string_view col);
  bool ReadDecimalException();

  std::string_view chunk_;
  ChunkInfo info_;
  absl::Status status_;
  Sample cur_;
  uint32_t read_ = 0;     // samples returned so far
  bool started_ = false;  // header decoded
  bool done_ = false;     // at the end or failed
  // Bit readers over the two columns.
  internal::BitReader ts_bits_, val_bits_;
  uint64_t interval_ = 0;  // kRegular: the one delta; kPacked: the grid's interval
  uint64_t delta_ = 0;     // kDeltaOfDelta: previous delta, modulo 2^64
  uint64_t value_bits_ = 0;
  uint8_t leading_ = 0, trailing_ = 0;  // kXor: current window of meaningful bits
  bool has_window_ = false;
  // kPacked timestamps; kDecimal and kFloatBits values.
  internal::IntColumnReader ts_ints_, val_ints_;
  // kDecimal: 10^e, and the exceptions not yet returned (the next one at exc_pos_).
  double scale_ = 1;
  std::string_view exc_;
  uint32_t exc_left_ = 0;
  uint64_t exc_pos_ = 0, exc_from_ = 0, exc_bits_ = 0;
};

}  // namespace tidemark

#endif  // TIDEMARK_STORAGE_CHUNK_H_
