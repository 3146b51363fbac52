// The wire format, as far as remote write 1.0 needs it (protobuf encoding; numbers are field
// numbers, wire types in parentheses):
//
//   WriteRequest   1 TimeSeries (2, repeated)   3 MetricMetadata (2, repeated)
//   TimeSeries     1 Label (2, repeated)   2 Sample (2, repeated)   3 Exemplar (2, repeated)
//                  4 bytes: native histogram (2, repeated; counted, not decoded)
//   Label          1 name (2)   2 value (2)
//   Sample         1 value: double (1)   2 timestamp: int64 (0)
//   Exemplar       1 Label (2, repeated)   2 value: double (1)   3 timestamp: int64 (0)
//   MetricMetadata 1 type: enum (0)   2 metric_family_name (2)   4 help (2)   5 unit (2)
//
// A tag is a varint (field << 3 | wire type). Wire types: 0 varint, 1 fixed64 (little-endian),
// 2 length-delimited (varint length, then bytes), 3/4 start/end group, 5 fixed32.
//
// libprotobuf's limits, mirrored so that both accept and refuse the same bytes: a tag is read
// from at most 5 bytes and kept modulo 2^32; a varint value from at most 10 bytes, modulo 2^64;
// a length from at most 5 bytes, the fifth below 8 (so below 2^31), and at most INT_MAX - 16.
#include "ingest/rw1_decode.h"

#include <climits>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace tidemark::ingest::internal {
namespace {

// libprotobuf's default recursion limit: messages and groups nested below the top level.
constexpr int kMaxDepth = 100;
// libprotobuf refuses lengths above INT_MAX - kSlopBytes.
constexpr uint32_t kMaxLength = INT_MAX - 16;

enum WireType : uint32_t {
  kVarint = 0,
  kFixed64 = 1,
  kLengthDelimited = 2,
  kStartGroup = 3,
  kEndGroup = 4,
  kFixed32 = 5,
};

constexpr uint32_t Tag(uint32_t field, WireType type) { return field << 3 | type; }

// Walks one buffer. Every Parse/Read function advances `p` (within [p, end) of the enclosing
// message) and returns false after recording the first error.
class Decoder {
 public:
  Decoder(std::string_view buf, Rw1Request* out)
      : base_(reinterpret_cast<const uint8_t*>(buf.data())), size_(buf.size()), out_(*out) {}

  absl::Status Run() {
    const uint8_t* p = base_;
    if (!ParseWriteRequest(p, base_ + size_)) return std::move(error_);
    return absl::OkStatus();
  }

 private:
  using Ptr = const uint8_t*;

  bool Fail(Ptr at, std::string_view what, const char* message) {
    error_ = absl::InvalidArgumentError(absl::StrCat(std::string(what), " at byte ",
                                                     at - base_, " (in a ", message, ")"));
    return false;
  }

  // Varint of at most 10 bytes, modulo 2^64.
  bool ReadVarint(Ptr& p, Ptr end, uint64_t* v, const char* message) {
    Ptr start = p;
    uint64_t result = 0;
    for (int i = 0; i < 10; ++i) {
      if (p == end) return Fail(start, "truncated varint", message);
      const uint8_t byte = *p++;
      result |= static_cast<uint64_t>(byte & 0x7f) << (7 * i);
      if (byte < 0x80) {
        *v = result;
        return true;
      }
    }
    return Fail(start, "varint longer than 10 bytes", message);
  }

  // Tag: a varint of at most 5 bytes, modulo 2^32.
  bool ReadTag(Ptr& p, Ptr end, uint32_t* tag, const char* message) {
    if (p < end && *p < 0x80) {  // fields 1..15: one byte
      *tag = *p++;
      return true;
    }
    Ptr start = p;
    uint32_t result = 0;
    for (int i = 0; i < 5; ++i) {
      if (p == end) return Fail(start, "truncated tag", message);
      const uint8_t byte = *p++;
      result |= static_cast<uint32_t>(byte & 0x7f) << (7 * i);  // bits past 32 are dropped
      if (byte < 0x80) {
        *tag = result;
        return true;
      }
    }
    return Fail(start, "tag longer than 5 bytes", message);
  }

  // A length-delimited field's bytes (its length already past the tag).
  bool ReadBytes(Ptr& p, Ptr end, std::string_view* bytes, const char* message) {
    Ptr start = p;
    uint32_t length;
    if (p < end && *p < 0x80) {
      length = *p++;
    } else {
      length = 0;
      for (int i = 0;; ++i) {
        if (p == end) return Fail(start, "truncated length", message);
        const uint8_t byte = *p++;
        if (i == 4 && byte >= 8) return Fail(start, "length of 2 GiB or more", message);
        length |= static_cast<uint32_t>(byte & 0x7f) << (7 * i);
        if (byte < 0x80) break;
      }
      if (length > kMaxLength) return Fail(start, "length of 2 GiB or more", message);
    }
    if (length > static_cast<size_t>(end - p)) {
      return Fail(start, absl::StrCat("length ", length, " past the end of the message"),
                  message);
    }
    *bytes = std::string_view(reinterpret_cast<const char*>(p), length);
    p += length;
    return true;
  }

  bool ReadFixed64(Ptr& p, Ptr end, uint64_t* v, const char* message) {
    if (end - p < 8) return Fail(p, "truncated fixed64", message);
    uint64_t x = 0;
    for (int i = 7; i >= 0; --i) x = x << 8 | p[i];  // little-endian on any host
    p += 8;
    *v = x;
    return true;
  }

  bool ReadDouble(Ptr& p, Ptr end, double* v, const char* message) {
    uint64_t bits = 0;
    if (!ReadFixed64(p, end, &bits, message)) return false;
    std::memcpy(v, &bits, sizeof bits);
    return true;
  }

  // Skips the value of an unknown field (or a known one with an unexpected wire type) whose
  // tag was just read, in a message nested `depth` levels below the top.
  bool SkipField(uint32_t tag, Ptr& p, Ptr end, int depth, const char* message) {
    Ptr at = p;
    const uint32_t field = tag >> 3;
    if (field == 0) return Fail(at, "field number 0", message);
    switch (tag & 7) {
      case kVarint: {
        uint64_t ignored = 0;
        return ReadVarint(p, end, &ignored, message);
      }
      case kFixed64:
        if (end - p < 8) return Fail(at, "truncated fixed64", message);
        p += 8;
        return true;
      case kLengthDelimited: {
        std::string_view ignored;
        return ReadBytes(p, end, &ignored, message);
      }
      case kStartGroup: {
        if (depth + 1 > kMaxDepth) return Fail(at, "groups nested too deep", message);
        while (p < end) {
          uint32_t inner = 0;
          if (!ReadTag(p, end, &inner, message)) return false;
          if ((inner & 7) == kEndGroup) {
            if (inner != tag + 1) return Fail(at, "group ends with another field", message);
            return true;
          }
          if (!SkipField(inner, p, end, depth + 1, message)) return false;
        }
        return Fail(at, "group without its end", message);
      }
      case kEndGroup:
        return Fail(at, "end of a group that was not started", message);
      case kFixed32:
        if (end - p < 4) return Fail(at, "truncated fixed32", message);
        p += 4;
        return true;
      default:
        return Fail(at, absl::StrCat("invalid wire type ", tag & 7), message);
    }
  }

  // Reads a length-delimited sub-message's bounds: [*sub_begin, *sub_end).
  bool EnterMessage(Ptr& p, Ptr end, Ptr* sub_begin, Ptr* sub_end, const char* message) {
    std::string_view bytes;
    if (!ReadBytes(p, end, &bytes, message)) return false;
    *sub_begin = reinterpret_cast<Ptr>(bytes.data());
    *sub_end = *sub_begin + bytes.size();
    return true;
  }

  bool ParseLabel(Ptr p, Ptr end, int depth, std::vector<Rw1Label>& into) {
    static constexpr char kMessage[] = "Label";
    Rw1Label label;
    while (p < end) {
      uint32_t tag = 0;
      if (!ReadTag(p, end, &tag, kMessage)) return false;
      switch (tag) {
        case Tag(1, kLengthDelimited):
          if (!ReadBytes(p, end, &label.name, kMessage)) return false;
          break;
        case Tag(2, kLengthDelimited):
          if (!ReadBytes(p, end, &label.value, kMessage)) return false;
          break;
        default:
          if (!SkipField(tag, p, end, depth, kMessage)) return false;
      }
    }
    into.push_back(label);
    return true;
  }

  // The shape nearly every Label has: name (field 1) then value (field 2), each with a
  // one-byte length, and nothing else. Decoded here without a call per field; anything else
  // (longer strings, other fields, another order) goes through ParseLabel, which gives the same
  // label for these bytes.
  static bool ParseShortLabel(Ptr b, Ptr e, Rw1Label* label) {
    const size_t size = static_cast<size_t>(e - b);
    if (size < 4 || b[0] != Tag(1, kLengthDelimited)) return false;
    const size_t n = b[1];
    if (n >= 0x80 || n + 4 > size || b[n + 2] != Tag(2, kLengthDelimited)) return false;
    const size_t m = b[n + 3];
    if (m >= 0x80 || n + m + 4 != size) return false;
    label->name = std::string_view(reinterpret_cast<const char*>(b + 2), n);
    label->value = std::string_view(reinterpret_cast<const char*>(b + n + 4), m);
    return true;
  }

  // A Sample as senders write it: value (field 1) then a timestamp (field 2) that ends the
  // message, with the same meaning as ParseSample gives these bytes.
  static bool ParseShortSample(Ptr b, Ptr e, Rw1Sample* sample) {
    if (e - b < 11 || e - b > 20 || b[0] != Tag(1, kFixed64) || b[9] != Tag(2, kVarint)) {
      return false;
    }
    uint64_t bits = 0;
    for (int i = 8; i >= 1; --i) bits = bits << 8 | b[i];
    uint64_t t = 0;
    int shift = 0;
    for (Ptr p = b + 10; p < e; ++p, shift += 7) {
      t |= static_cast<uint64_t>(*p & 0x7f) << shift;
      if ((*p < 0x80) != (p + 1 == e)) return false;  // the varint ends exactly at e
    }
    std::memcpy(&sample->value, &bits, sizeof bits);
    sample->timestamp = static_cast<int64_t>(t);
    return true;
  }

  bool ParseSample(Ptr p, Ptr end, int depth) {
    static constexpr char kMessage[] = "Sample";
    Rw1Sample sample;
    while (p < end) {
      uint32_t tag = 0;
      if (!ReadTag(p, end, &tag, kMessage)) return false;
      switch (tag) {
        case Tag(1, kFixed64):
          if (!ReadDouble(p, end, &sample.value, kMessage)) return false;
          break;
        case Tag(2, kVarint): {
          uint64_t v = 0;
          if (!ReadVarint(p, end, &v, kMessage)) return false;
          sample.timestamp = static_cast<int64_t>(v);
          break;
        }
        default:
          if (!SkipField(tag, p, end, depth, kMessage)) return false;
      }
    }
    out_.samples.push_back(sample);
    return true;
  }

  bool ParseExemplar(Ptr p, Ptr end, int depth) {
    static constexpr char kMessage[] = "Exemplar";
    Rw1Exemplar exemplar;
    exemplar.labels_begin = out_.exemplar_labels.size();
    while (p < end) {
      uint32_t tag = 0;
      if (!ReadTag(p, end, &tag, kMessage)) return false;
      switch (tag) {
        case Tag(1, kLengthDelimited): {
          Ptr b, e;
          if (!EnterMessage(p, end, &b, &e, kMessage)) return false;
          if (!ParseLabel(b, e, depth + 1, out_.exemplar_labels)) return false;
          break;
        }
        case Tag(2, kFixed64):
          if (!ReadDouble(p, end, &exemplar.value, kMessage)) return false;
          break;
        case Tag(3, kVarint): {
          uint64_t v = 0;
          if (!ReadVarint(p, end, &v, kMessage)) return false;
          exemplar.timestamp = static_cast<int64_t>(v);
          break;
        }
        default:
          if (!SkipField(tag, p, end, depth, kMessage)) return false;
      }
    }
    exemplar.labels_end = out_.exemplar_labels.size();
    out_.exemplars.push_back(exemplar);
    return true;
  }

  bool ParseTimeSeries(Ptr p, Ptr end, int depth) {
    static constexpr char kMessage[] = "TimeSeries";
    Rw1Series series;
    series.labels_begin = series.labels_end = out_.labels.size();
    series.samples_begin = series.samples_end = out_.samples.size();
    series.exemplars_begin = series.exemplars_end = out_.exemplars.size();
    while (p < end) {
      uint32_t tag = 0;
      if (!ReadTag(p, end, &tag, kMessage)) return false;
      // A label or sample of under 128 bytes in the usual shape: no further calls.
      if (p < end && *p < 0x80 && *p < end - p) {
        Ptr b = p + 1, e = b + *p;
        if (tag == Tag(1, kLengthDelimited)) {
          Rw1Label label;
          if (ParseShortLabel(b, e, &label)) {
            out_.labels.push_back(label);
            p = e;
            continue;
          }
        } else if (tag == Tag(2, kLengthDelimited)) {
          Rw1Sample sample;
          if (ParseShortSample(b, e, &sample)) {
            out_.samples.push_back(sample);
            p = e;
            continue;
          }
        }
      }
      switch (tag) {
        case Tag(1, kLengthDelimited): {
          Ptr b, e;
          if (!EnterMessage(p, end, &b, &e, kMessage)) return false;
          if (!ParseLabel(b, e, depth + 1, out_.labels)) return false;
          break;
        }
        case Tag(2, kLengthDelimited): {
          Ptr b, e;
          if (!EnterMessage(p, end, &b, &e, kMessage)) return false;
          if (!ParseSample(b, e, depth + 1)) return false;
          break;
        }
        case Tag(3, kLengthDelimited): {
          Ptr b, e;
          if (!EnterMessage(p, end, &b, &e, kMessage)) return false;
          if (!ParseExemplar(b, e, depth + 1)) return false;
          break;
        }
        case Tag(4, kLengthDelimited): {
          std::string_view ignored;
          if (!ReadBytes(p, end, &ignored, kMessage)) return false;
          ++series.histograms;
          break;
        }
        default:
          if (!SkipField(tag, p, end, depth, kMessage)) return false;
      }
    }
    // Each repeated field's elements are contiguous: nothing else appends to these arrays
    // while one series is parsed.
    series.labels_end = out_.labels.size();
    series.samples_end = out_.samples.size();
    series.exemplars_end = out_.exemplars.size();
    out_.series.push_back(series);
    return true;
  }

  bool ParseMetadata(Ptr p, Ptr end, int depth) {
    static constexpr char kMessage[] = "MetricMetadata";
    Rw1Metadata md;
    while (p < end) {
      uint32_t tag = 0;
      if (!ReadTag(p, end, &tag, kMessage)) return false;
      switch (tag) {
        case Tag(1, kVarint): {
          uint64_t v = 0;
          if (!ReadVarint(p, end, &v, kMessage)) return false;
          md.type = static_cast<int32_t>(static_cast<uint32_t>(v));  // as libprotobuf's enum
          break;
        }
        case Tag(2, kLengthDelimited):
          if (!ReadBytes(p, end, &md.metric_family_name, kMessage)) return false;
          break;
        case Tag(4, kLengthDelimited):
          if (!ReadBytes(p, end, &md.help, kMessage)) return false;
          break;
        case Tag(5, kLengthDelimited):
          if (!ReadBytes(p, end, &md.unit, kMessage)) return false;
          break;
        default:
          if (!SkipField(tag, p, end, depth, kMessage)) return false;
      }
    }
    out_.metadata.push_back(md);
    return true;
  }

  bool ParseWriteRequest(Ptr p, Ptr end) {
    static constexpr char kMessage[] = "WriteRequest";
    while (p < end) {
      uint32_t tag = 0;
      if (!ReadTag(p, end, &tag, kMessage)) return false;
      switch (tag) {
        case Tag(1, kLengthDelimited): {
          Ptr b, e;
          if (!EnterMessage(p, end, &b, &e, kMessage)) return false;
          if (!ParseTimeSeries(b, e, 1)) return false;
          break;
        }
        case Tag(3, kLengthDelimited): {
          Ptr b, e;
          if (!EnterMessage(p, end, &b, &e, kMessage)) return false;
          if (!ParseMetadata(b, e, 1)) return false;
          break;
        }
        default:
          if (!SkipField(tag, p, end, 0, kMessage)) return false;
      }
    }
    return true;
  }

  const Ptr base_;
  const size_t size_;
  Rw1Request& out_;
  absl::Status error_;
};

}  // namespace

void Rw1Request::Clear() {
  series.clear();
  labels.clear();
  samples.clear();
  exemplars.clear();
  exemplar_labels.clear();
  metadata.clear();
}

absl::Status DecodeRw1WriteRequest(std::string_view buf, Rw1Request* out) {
  out->Clear();
  return Decoder(buf, out).Run();
}

}  // namespace tidemark::ingest::internal
