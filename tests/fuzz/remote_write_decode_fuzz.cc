// Differential libFuzzer target for remote write 1.0's hand-written decoder
// (ingest/rw1_decode.h): arbitrary bytes as a serialized WriteRequest (not snappy-compressed),
// parsed by libprotobuf into prompb::WriteRequest and by DecodeRw1WriteRequest. Built and run by
// tests/fuzz/run_fuzzer.sh remote_write_decode_fuzz SECONDS (ctest label `fuzz`).
//
// Invariant beyond "no crash, no sanitizer report": both accept or both refuse, and when they
// accept they agree on every series, label, sample (bit for bit), exemplar, histogram count and
// metadata field.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "tests/fuzz/remote_write_decode_compare.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string diff = tidemark::ingest::testing::CompareRw1Decoders(
      std::string_view(reinterpret_cast<const char*>(data), size));
  if (!diff.empty()) {
    std::fprintf(stderr, "rw1_decode disagrees with libprotobuf: %s\n", diff.c_str());
    std::abort();
  }
  return 0;
}
