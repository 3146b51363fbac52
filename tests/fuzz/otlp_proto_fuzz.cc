// libFuzzer target for OTLP/HTTP protobuf bodies (ingest/otlp.h): ExportMetricsServiceRequest
// decoding (optionally behind gzip) and translation into a checking appender and side store.
// Input layout and invariants: tests/fuzz/otlp_fuzz_common.h. Built and run by
// tests/fuzz/run_fuzzer.sh otlp_proto_fuzz SECONDS (ctest fuzz.otlp_proto_fuzz, label `fuzz`).
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/otlp_fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return tidemark_fuzz::RunOtlpFuzz(data, size, tidemark::ingest::OtlpEncoding::kProtobuf);
}
