// libFuzzer target: decodes arbitrary bytes as a chunk. Decoding must never crash or read out
// of bounds; it ends with OK or DataLoss. A chunk that decodes is re-encoded and must decode to
// the same samples. Build and run with tests/fuzz/run_fuzzer.sh chunk_fuzz SECONDS (ctest label
// `fuzz`).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "storage/chunk.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using tidemark::ChunkIterator;
  using tidemark::Sample;
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::vector<Sample> samples;
  ChunkIterator it(bytes);
  while (it.Next()) samples.push_back(it.At());
  if (!it.status().ok()) {
    if (it.status().code() != absl::StatusCode::kDataLoss) abort();
    return 0;
  }
  // It decoded: the header agrees and a re-encoding round-trips.
  absl::StatusOr<tidemark::ChunkInfo> info = tidemark::ReadChunkInfo(bytes);
  if (!info.ok() || info->num_samples != samples.size()) abort();
  std::string again;
  if (!tidemark::EncodeChunk(samples, &again).ok()) abort();
  ChunkIterator it2(again);
  for (const Sample& s : samples) {
    if (!it2.Next() || !(it2.At() == s)) abort();
  }
  if (it2.Next() || !it2.status().ok()) abort();
  // Seek agrees with Next.
  ChunkIterator it3(bytes);
  for (const Sample& s : samples) {
    if (!it3.Seek(s.t) || !(it3.At() == s)) abort();
  }
  return 0;
}
