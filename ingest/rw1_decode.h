// Remote write 1.0 `prometheus.WriteRequest` decoded in place: a hand-written protobuf
// wire-format walker that yields views into the (snappy-decoded) request bytes instead of
// copying every label name and value into a std::string as libprotobuf does.
//
// The request's strings are `std::string_view`s into the buffer given to DecodeRw1WriteRequest,
// which must outlive the Rw1Request. Repeated fields are flattened into a few arrays; a series
// refers to its labels, samples and exemplars by index range. Not thread-safe; an Rw1Request
// may be reused (Decode clears it first, keeping the arrays' capacity).
//
// Accepted and refused exactly as libprotobuf 3.21 parses ingest/proto/remote_write.proto
// (tests/fuzz/remote_write_decode_fuzz.cc checks the two against each other):
//   - fields in any order, any number of times; for a singular field the last one wins;
//   - a field whose number is unknown, or known with another wire type than declared, is
//     skipped, whatever its wire type, groups (3 ... 4) included, nested up to libprotobuf's
//     recursion limit of 100 levels (messages and groups together);
//   - refused: field number 0, wire types 6 and 7, an end-group (4) without its start group,
//     a varint over 10 bytes, a tag over 5 bytes, a length over 5 bytes or over 2^31 - 1,
//     anything (length, fixed32/64, varint, tag) running past the end of its message.
// Strings are declared `bytes` in our .proto, so no UTF-8 check is made here (the caller
// validates labels; metadata that is not UTF-8 is dropped by the caller).
// There are no repeated scalar fields in remote write 1.0, so no packed encoding applies: a
// singular scalar sent length-delimited ("packed") is a wire-type mismatch and is skipped.
// Native histograms (TimeSeries field 4) are not decoded, only counted.
#ifndef TIDEMARK_INGEST_RW1_DECODE_H_
#define TIDEMARK_INGEST_RW1_DECODE_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "storage/labels.h"

namespace tidemark::ingest::internal {

// Label field 1 (name) and field 2 (value), as views into the decoded body.
using Rw1Label = LabelView;

struct Rw1Sample {
  double value = 0;       // Sample field 1 (fixed64)
  int64_t timestamp = 0;  // Sample field 2 (varint), milliseconds
};

struct Rw1Exemplar {
  size_t labels_begin = 0;  // [begin, end) in Rw1Request::exemplar_labels (field 1)
  size_t labels_end = 0;
  double value = 0;       // field 2
  int64_t timestamp = 0;  // field 3
};

struct Rw1Series {
  size_t labels_begin = 0, labels_end = 0;        // Rw1Request::labels (field 1)
  size_t samples_begin = 0, samples_end = 0;      // Rw1Request::samples (field 2)
  size_t exemplars_begin = 0, exemplars_end = 0;  // Rw1Request::exemplars (field 3)
  size_t histograms = 0;                          // how many field 4 (native histograms)
};

struct Rw1Metadata {
  int32_t type = 0;                     // field 1, the MetricType enum's number (open enum)
  std::string_view metric_family_name;  // field 2
  std::string_view help;                // field 4
  std::string_view unit;                // field 5
};

// A decoded WriteRequest: `series` (field 1) and `metadata` (field 3) in request order.
struct Rw1Request {
  std::vector<Rw1Series> series;
  std::vector<Rw1Label> labels;
  std::vector<Rw1Sample> samples;
  std::vector<Rw1Exemplar> exemplars;
  std::vector<Rw1Label> exemplar_labels;
  std::vector<Rw1Metadata> metadata;

  std::span<const Rw1Label> LabelsOf(const Rw1Series& s) const {
    return std::span<const Rw1Label>(labels).subspan(s.labels_begin,
                                                     s.labels_end - s.labels_begin);
  }
  std::span<const Rw1Sample> SamplesOf(const Rw1Series& s) const {
    return std::span<const Rw1Sample>(samples).subspan(s.samples_begin,
                                                       s.samples_end - s.samples_begin);
  }
  std::span<const Rw1Exemplar> ExemplarsOf(const Rw1Series& s) const {
    return std::span<const Rw1Exemplar>(exemplars).subspan(
        s.exemplars_begin, s.exemplars_end - s.exemplars_begin);
  }
  std::span<const Rw1Label> LabelsOf(const Rw1Exemplar& e) const {
    return std::span<const Rw1Label>(exemplar_labels)
        .subspan(e.labels_begin, e.labels_end - e.labels_begin);
  }
  void Clear();
};

// Decodes `buf` (a serialized prometheus.WriteRequest) into `out`, whose views point into
// `buf`. InvalidArgument naming the first malformed field and its byte offset when `buf` is
// not a valid encoding (then `out` holds an unspecified partial result).
absl::Status DecodeRw1WriteRequest(std::string_view buf, Rw1Request* out);

}  // namespace tidemark::ingest::internal

#endif  // TIDEMARK_INGEST_RW1_DECODE_H_
