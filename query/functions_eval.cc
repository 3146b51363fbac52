#include "query/functions_eval.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>
#include <numbers>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "query/rate_functions.h"
#include "re2/re2.h"

namespace tidemark::promql::internal {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

using FunctionImpl = absl::StatusOr<Value> (*)(const Call&, int64_t, FunctionContext&);

// ---- Argument helpers ----

const Expr& UnwrapParens(const Expr& e) {
  const Expr* cur = &e;
  while (const auto* p = cur->As<ParenExpr>()) {
    if (p->expr == nullptr) break;
    cur = p->expr.get();
  }
  return *cur;
}

absl::Status CheckArgs(const Call& call, size_t min, size_t max) {
  if (call.args.size() < min || call.args.size() > max) {
    return absl::InvalidArgumentError(absl::StrCat("wrong number of arguments in call to \"",
                                                   call.func, "\": ", call.args.size()));
  }
  for (const ExprPtr& a : call.args) {
    if (a == nullptr) return absl::InvalidArgumentError("missing function argument");
  }
  return absl::OkStatus();
}

absl::StatusOr<Vector> ArgVector(FunctionContext& ctx, const Expr& e, int64_t t) {
  absl::StatusOr<Value> v = ctx.Eval(e, t);
  if (!v.ok()) return v.status();
  if (auto* vec = std::get_if<Vector>(&*v)) return std::move(*vec);
  return absl::InvalidArgumentError(absl::StrCat(
      "expected instant vector, got ", std::string(ValueTypeName(TypeOfValue(*v)))));
}

absl::StatusOr<double> ArgScalar(FunctionContext& ctx, const Expr& e, int64_t t) {
  absl::StatusOr<Value> v = ctx.Eval(e, t);
  if (!v.ok()) return v.status();
  if (const auto* s = std::get_if<Scalar>(&*v)) return s->v;
  return absl::InvalidArgumentError(
      absl::StrCat("expected scalar, got ", std::string(ValueTypeName(TypeOfValue(*v)))));
}

absl::StatusOr<std::string> ArgString(const Expr& e) {
  if (const auto* s = UnwrapParens(e).As<StringLiteral>()) return s->value;
  return absl::InvalidArgumentError("expected a string literal argument");
}

absl::Status DuplicateLabelsetError() {
  return absl::FailedPreconditionError("vector cannot contain metrics with the same labelset");
}

// Fails when two elements share a label set; keeps the order of `v`.
absl::Status CheckUnique(const Vector& v) {
  if (v.size() < 2) return absl::OkStatus();
  std::vector<const Labels*> ls;
  ls.reserve(v.size());
  for (const VectorElement& e : v) ls.push_back(&e.labels);
  std::sort(ls.begin(), ls.end(), [](const Labels* a, const Labels* b) { return *a < *b; });
  for (size_t i = 1; i < ls.size(); ++i) {
    if (*ls[i] == *ls[i - 1]) return DuplicateLabelsetError();
  }
  return absl::OkStatus();
}

absl::StatusOr<Value> Finish(Vector out) {
  if (absl::Status st = CheckUnique(out); !st.ok()) return st;
  return Value(std::move(out));
}

Labels DropName(const Labels& l) { return l.Without(kMetricNameLabel); }

// Go's math.Max / math.Min: an infinity wins over NaN, NaN wins over numbers, +0 > -0.
double GoMax(double x, double y) {
  if (std::isinf(x) && x > 0) return x;
  if (std::isinf(y) && y > 0) return y;
  if (std::isnan(x) || std::isnan(y)) return kNaN;
  if (x == 0 && x == y) return std::signbit(x) ? y : x;
  return x > y ? x : y;
}

double GoMin(double x, double y) {
  if (std::isinf(x) && x < 0) return x;
  if (std::isinf(y) && y < 0) return y;
  if (std::isnan(x) || std::isnan(y)) return kNaN;
  if (x == 0 && x == y) return std::signbit(x) ? x : y;
  return x < y ? x : y;
}

// ---- Instant-vector math: f applied to each value, metric name dropped. ----

template <double (*F)(double)>
absl::StatusOr<Value> Simple(const Call& call, int64_t t, FunctionContext& ctx) {
  if (absl::Status st = CheckArgs(call, 1, 1); !st.ok()) return st;
  absl::StatusOr<Vector> vec = ArgVector(ctx, *call.args[0], t);
  if (!vec.ok()) return vec.status();
  for (VectorElement& e : *vec) {
    e.labels = DropName(e.labels);
    e.v = F(e.v);
    e.t = t;
  }
  return Finish(*std::move(vec));
}

double FAbs(double v) { return std::fabs(v); }
double FCeil(double v) { return std::ceil(v); }
double FFloor(double v) { return std::floor(v); }
double FExp(double v) { return std::exp(v); }
double FSqrt(double v) { return std::sqrt(v); }
double FLn(double v) { return std::log(v); }
// Go computes log2 from the exponent and log of the fraction, and log10 as ln(x) * (1/ln 10);
// following it keeps the last bit equal to Prometheus's (e.g. log10(1000) = 2.9999999999999996).
double FLog2(double v) {
  int exp = 0;
  double frac = std::frexp(v, &exp);
  if (frac == 0.5) return static_cast<double>(exp - 1);
  return std::log(frac) * std::numbers::log2e + static_cast<double>(exp);
}
double FLog10(double v) { return std::log(v) * std::numbers::log10e; }
double FSin(double v) { return std::sin(v); }
double FCos(double v) { return std::cos(v); }
double FTan(double v) { return std::tan(v); }
double FAsin(double v) { return std::asin(v); }
double FAcos(double v) { return std::acos(v); }
double FAtan(double v) { return std::atan(v); }
double FSinh(double v) { return std::sinh(v); }
double FCosh(double v) { return std::cosh(v); }
double FTanh(double v) { return std::tanh(v); }
double FAsinh(double v) { return std::asinh(v); }
double FAcosh(double v) { return std::acosh(v); }
double FAtanh(double v) { return std::atanh(v); }
double FRad(double v) { return v * std::numbers::pi / 180; }
double FDeg(double v) { return v * 180 / std::numbers::pi; }
double FSgn(double v) {
  if (v < 0) return -1;
  if (v > 0) return 1;
  return v;  // 0, -0 and NaN stay
}

absl::StatusOr<Value> FuncClamp(const Call& call, int64_t t, FunctionContext& ctx) {
  if (absl::Status st = CheckArgs(call, 3, 3); !st.ok()) return st;
  absl::StatusOr<Vector> vec = ArgVector(ctx, *call.args[0], t);
  if (!vec.ok()) return vec.status();
  absl::StatusOr<double> lo = ArgScalar(ctx, *call.args[1], t);
  if (!lo.ok()) return lo.status();
  absl::StatusOr<double> hi = ArgScalar(ctx, *call.args[2], t);
  if (!hi.ok()) return hi.status();
  if (*hi < *lo) return Value(Vector{});
  for (VectorElement& e : *vec) {
    e.labels = DropName(e.labels);
    e.v = GoMax(*lo, GoMin(*hi, e.v));
    e.t = t;
  }
  return Finish(*std::move(vec));
}

template <bool kIsMax>
absl::StatusOr<Value> FuncClampOne(const Call& call, int64_t t, FunctionContext& ctx) {
  if (absl::Status st = CheckArgs(call, 2, 2); !st.ok()) return st;
  absl::StatusOr<Vector> vec = ArgVector(ctx, *call.args[0], t);
  if (!vec.ok()) return vec.status();
  absl::StatusOr<double> bound = ArgScalar(ctx, *call.args[1], t);
  if (!bound.ok()) return bound.status();
  for (VectorElement& e : *vec) {
    e.labels = DropName(e.labels);
    e.v = kIsMax ? GoMin(*bound, e.v) : GoMax(*bound, e.v);
    e.t = t;
  }
  return Finish(*std::move(vec));
}

absl::StatusOr<Value> FuncRound(const Call& call, int64_t t, FunctionContext& ctx) {
  if (absl::Status st = CheckArgs(call, 1, 2); !st.ok()) return st;
  absl::StatusOr<Vector> vec = ArgVector(ctx, *call.args[0], t);
  if (!vec.ok()) return vec.status();
  double to_nearest = 1;
  if (call.args.size() == 2) {
    absl::StatusOr<double> s = ArgScalar(ctx, *call.args[1], t);
    if (!s.ok()) return s.status();
    to_nearest = *s;
  }
  // Prometheus multiplies by the inverse (fewer floating point surprises); ties round up.
  double inverse = 1.0 / to_nearest;
  for (VectorElement& e : *vec) {
    e.labels = DropName(e.labels);
    e.v = std::floor(e.v * inverse + 0.5) / inverse;
    e.t = t;
  }
  return Finish(*std::move(vec));
}

// ---- Scalars and conversions ----

absl::StatusOr<Value> FuncTime(const Call& call, int64_t t, FunctionContext&) {
  if (absl::Status st = CheckArgs(call, 0, 0); !st.ok()) return st;
  return Value(Scalar{t, static_cast<double>(t) / 1000});
}

absl::StatusOr<Value> FuncPi(const Call& call, int64_t t, FunctionContext&) {
  if (absl::Status st = CheckArgs(call, 0, 0); !st.ok()) return st;
  return Value(Scalar{t, std::numbers::pi});
}

absl::StatusOr<Value> FuncScalar(const Call& call, int64_t t, FunctionContext& ctx) {
  if (absl::Status st = CheckArgs(call, 1, 1); !st.ok()) return st;
  absl::StatusOr<Vector> vec = ArgVector(ctx, *call.args[0], t);
  if (!vec.ok()) return vec.status();
  return Value(Scalar{t, vec->size() == 1 ? (*vec)[0].v : kNaN});
}

absl::StatusOr<Value> FuncVector(const Call& call, int64_t t, FunctionContext& ctx) {
  if (absl::Status st = CheckArgs(call, 1, 1); !st.ok()) return st;
  absl::StatusOr<double> s = ArgScalar(ctx, *call.args[0], t);
  if (!s.ok()) return s.status();
  return Value(Vector{VectorElement{Labels(), t, *s}});
}

absl::StatusOr<Value> FuncTimestamp(const Call& call, int64_t t, FunctionContext& ctx) {
  if (absl::Status st = CheckArgs(call, 1, 1); !st.ok()) return st;
  // On a plain selector the sample's own timestamp; on anything else the evaluation time.
  absl::StatusOr<Vector> vec;
  if (const auto* vs = UnwrapParens(*call.args[0]).As<VectorSelector>()) {
    vec = ctx.SelectWithSampleTimes(*vs, t);
  } else {
    vec = ArgVector(ctx, *call.args[0], t);
  }
  if (!vec.ok()) return vec.status();
  for (VectorElement& e : *vec) {
    e.labels = DropName(e.labels);
    e.v = static_cast<double>(e.t) / 1000;
    e.t = t;
  }
  return Finish(*std::move(vec));
}

// The labels absent() and absent_over_time() give: those of equality matchers of a plain
// selector argument, except the metric name and labels matched more than once or otherwise.
Labels AbsentLabels(const Expr& arg) {
  const Expr& e = UnwrapParens(arg);
  const VectorSelector* vs = e.As<VectorSelector>();
  if (const auto* ms = e.As<MatrixSelector>(); ms != nullptr && ms->selector != nullptr) {
    vs = ms->selector->As<VectorSelector>();
  }
  if (vs == nullptr) return Labels();
  std::vector<Label> set;
  std::vector<std::string> drop;
  for (const LabelMatcher& m : vs->matchers) {
    if (m.name() == kMetricNameLabel) continue;
    // An empty value sets nothing, so a later equality matcher on the name still counts.
    bool seen = std::any_of(set.begin(), set.end(), [&](const Label& l) {
      return l.name == m.name() && !l.value.empty();
    });
    if (m.type() == MatchType::kEqual && !seen) {
      set.push_back(Label{m.name(), m.value()});
    } else {
      drop.push_back(m.name());
    }
  }
  Labels out = Labels::FromUnsorted(std::move(set));
  return out.Filter(drop, false);
}

absl::StatusOr<Value> FuncAbsent(const Call& call, int64_t t, FunctionContext& ctx) {
  if (absl::Status st = CheckArgs(call, 1, 1); !st.ok()) return st;
  absl::StatusOr<Vector> vec = ArgVector(ctx, *call.args[0], t);
  if (!vec.ok()) return vec.status();
  if (!vec->empty()) return Value(Vector{});
  return Value(Vector{VectorElement{AbsentLabels(*call.args[0]), t, 1}});
}

absl::StatusOr<Value> FuncAbsentOverTime(const Call& call, int64_t t, FunctionContext& ctx) {
  if (absl::Status st = CheckArgs(call, 1, 1); !st.ok()) return st;
  absl::StatusOr<RangeArgument> r = ctx.EvalRange(*call.args[0], t);
  if (!r.ok()) return r.status();
  for (const WindowSeries& s : r->series) {
    if (!s.samples.empty()) return Value(Vector{});
  }
  return Value(Vector{VectorElement{AbsentLabels(*call.args[0]), t, 1}});
}

// ---- sort / sort_desc ----

// Go's sort.Sort on Prometheus's comparators. For up to 12 elements Go's pdqsort is an
// insertion sort, which this reproduces exactly (equal values keep their order, NaNs go last in
// reverse order). Longer vectors use a stable sort with NaNs last, which can order ties and
// NaNs differently from Go's unstable sort.
template <typename Less>
void GoSort(Vector& v, Less less) {
  if (v.size() <= 12) {
    for (size_t i = 1; i < v.size(); ++i) {
      for (size_t j = i; j > 0 && less(v[j], v[j - 1]); --j) std::swap(v[j], v[j - 1]);
    }
    return;
  }
  std::vector<VectorElement> nans;
  Vector numbers;
  for (VectorElement& e : v) (std::isnan(e.v) ? nans : numbers).push_back(std::move(e));
  std::stable_sort(numbers.begin(), numbers.end(), less);
  std::reverse(nans.begin(), nans.end());
  v = std::move(numbers);
  for (VectorElement& e : nans) v.push_back(std::move(e));
}

template <bool kDescending>
absl::StatusOr<Value> FuncSort(const Call& call, int64_t t, FunctionContext& ctx) {
  if (absl::Status st = CheckArgs(call, 1, 1); !st.ok()) return st;
  absl::StatusOr<Vector> vec = ArgVector(ctx, *call.args[0], t);
  if (!vec.ok()) return vec.status();
  // sort.Reverse over "NaN first, then by value": i sorts before j when j is NaN or j's value
  // is above (below, descending) i's.
  GoSort(*vec, [](const VectorElement& a, const VectorElement& b) {
    if (std::isnan(b.v)) return true;
    return kDescending ? b.v < a.v : b.v > a.v;
  });
  for (VectorElement& e : *vec) e.t = t;
  return Value(*std::move(vec));
}

// ---- Label functions ----

bool IsNameChar(unsigned char c) {
  // Go's unicode.IsLetter/IsDigit; any non-ASCII byte is taken as part of a letter.
  return std::isalnum(c) || c == '_' || c >= 0x80;
}

// ---- Dates ----

// Go's time package: the calendar of the absolute time `sec` seconds after the Unix epoch,
// following its unsigned arithmetic so that any int64 gives Go's answer.
struct GoDate {
  int64_t year = 0;
  int month = 0;        // 1..12
  int day = 0;          // 1..31
  int year_day = 0;     // 1..366
  int weekday = 0;      // Sunday = 0
  int hour = 0;
  int minute = 0;
};

bool IsLeap(int64_t year) { return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0); }

GoDate GoCalendar(int64_t sec) {
  constexpr uint64_t kSecondsPerDay = 86400;
  constexpr uint64_t kUnixToInternal = 62135596800ULL;
  constexpr uint64_t kInternalToAbsolute = 9223371966579724800ULL;
  constexpr int64_t kAbsoluteZeroYear = -292277022399LL;
  constexpr uint64_t kDaysPer400Years = 365 * 400 + 97;
  constexpr uint64_t kDaysPer100Years = 365 * 100 + 24;
  constexpr uint64_t kDaysPer4Years = 365 * 4 + 1;
  static constexpr int kDaysBefore[] = {0,   31,  59,  90,  120, 151, 181,
                                        212, 243, 273, 304, 334, 365};
  uint64_t abs = static_cast<uint64_t>(sec) + kUnixToInternal + kInternalToAbsolute;
  GoDate out;
  out.hour = static_cast<int>((abs % kSecondsPerDay) / 3600);
  out.minute = static_cast<int>((abs % 3600) / 60);
  // January 1 of the absolute year was a Monday.
  out.weekday = static_cast<int>(((abs + kSecondsPerDay) % (7 * kSecondsPerDay)) / kSecondsPerDay);
  uint64_t d = abs / kSecondsPerDay;
  uint64_t n = d / kDaysPer400Years;
  uint64_t y = 400 * n;
  d -= kDaysPer400Years * n;
  n = d / kDaysPer100Years;
  n -= n >> 2;
  y += 100 * n;
  d -= kDaysPer100Years * n;
  n = d / kDaysPer4Years;
  y += 4 * n;
  d -= kDaysPer4Years * n;
  n = d / 365;
  n -= n >> 2;
  y += n;
  d -= 365 * n;
  out.year = static_cast<int64_t>(y) + kAbsoluteZeroYear;
  int yday = static_cast<int>(d);
  out.year_day = yday + 1;
  int day = yday;
  if (IsLeap(out.year)) {
    if (day > 31 + 29 - 1) {
      --day;
    } else if (day == 31 + 29 - 1) {
      out.month = 2;
      out.day = 29;
      return out;
    }
  }
  int month = day / 31;
  int end = kDaysBefore[month + 1];
  int begin;
  if (day >= end) {
    ++month;
    begin = end;
  } else {
    begin = kDaysBefore[month];
  }
  out.month = month + 1;
  out.day = day - begin + 1;
  return out;
}

int DaysIn(int64_t year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month == 2 && IsLeap(year)) return 29;
  return kDays[month - 1];
}

// Go's int64(float64) on amd64: out-of-range values and NaN give the minimum int64.
int64_t GoFloatToInt64(double v) {
  if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0)) {
    return std::numeric_limits<int64_t>::min();
  }
  return static_cast<int64_t>(v);
}

template <double (*F)(const GoDate&)>
absl::StatusOr<Value> DateFunc(const Call& call, int64_t t, FunctionContext& ctx) {
  if (absl::Status st = CheckArgs(call, 0, 1); !st.ok()) return st;
  if (call.args.empty()) {
    return Value(Vector{VectorElement{Labels(), t, F(GoCalendar(t / 1000))}});
  }
  absl::StatusOr<Vector> vec = ArgVector(ctx, *call.args[0], t);
  if (!vec.ok()) return vec.status();
  for (VectorElement& e : *vec) {
    e.labels = DropName(e.labels);
    e.v = F(GoCalendar(GoFloatToInt64(e.v)));
    e.t = t;
  }
  return Finish(*std::move(vec));
}

double DDayOfMonth(const GoDate& d) { return d.day; }
double DDayOfWeek(const GoDate& d) { return d.weekday; }
double DDayOfYear(const GoDate& d) { return d.year_day; }
double DDaysInMonth(const GoDate& d) { return DaysIn(d.year, d.month); }
double DHour(const GoDate& d) { return d.hour; }
double DMinute(const GoDate& d) { return d.minute; }
double DMonth(const GoDate& d) { return d.month; }
double DYear(const GoDate& d) { return static_cast<double>(d.year); }

// ---- label_replace / label_join ----

// label_replace's anchored regex, compiled once per thread and regex (a range query calls
// label_replace at every step).
std::shared_ptr<const RE2> CompiledRegex(const std::string& regex) {
  constexpr size_t kMaxCached = 64;
  thread_local absl::flat_hash_map<std::string, std::shared_ptr<const RE2>> cache;
  if (auto it = cache.find(regex); it != cache.end()) return it->second;
  RE2::Options options;
  options.set_log_errors(false);
  auto re = std::make_shared<const RE2>(absl::StrCat("^(?:", regex, ")$"), options);
  if (cache.size() >= kMaxCached) cache.clear();
  cache.emplace(regex, re);
  return re;
}

absl::StatusOr<Value> FuncLabelReplace(const Call& call, int64_t t, FunctionContext& ctx) {
  if (absl::Status st = CheckArgs(call, 5, 5); !st.ok()) return st;
  std::string args[4];
  for (int i = 0; i < 4; ++i) {
    absl::StatusOr<std::string> s = ArgString(*call.args[i + 1]);
    if (!s.ok()) return s.status();
    args[i] = *std::move(s);
  }
  const std::string& dst = args[0];
  const std::string& repl = args[1];
  const std::string& src = args[2];
  const std::string& regex = args[3];
  std::shared_ptr<const RE2> compiled = CompiledRegex(regex);
  const RE2& re = *compiled;
  if (!re.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("invalid regular expression in label_replace(): ", regex));
  }
  if (!IsValidLabelName(dst)) {
    return absl::FailedPreconditionError(
        absl::StrCat("invalid destination label name in label_replace(): ", dst));
  }
  absl::StatusOr<Vector> vec = ArgVector(ctx, *call.args[0], t);
  if (!vec.ok()) return vec.status();
  int ngroups = re.NumberOfCapturingGroups() + 1;
  MatchGroups match;
  for (const auto& [name, index] : re.NamedCapturingGroups()) match.names.emplace_back(name, index);
  std::sort(match.names.begin(), match.names.end(),
            [](const auto& a, const auto& b) { return a.second < b.second; });
  std::vector<re2::StringPiece> pieces(static_cast<size_t>(ngroups));
  for (VectorElement& e : *vec) {
    e.t = t;
    std::string value(e.labels.Get(src));
    if (!re.Match(value, 0, value.size(), RE2::ANCHOR_BOTH, pieces.data(), ngroups)) continue;
    match.groups.assign(static_cast<size_t>(ngroups), std::string_view());
    match.matched.assign(static_cast<size_t>(ngroups), false);
    for (int i = 0; i < ngroups; ++i) {
      if (pieces[static_cast<size_t>(i)].data() != nullptr) {
        match.groups[static_cast<size_t>(i)] = std::string_view(
            pieces[static_cast<size_t>(i)].data(), pieces[static_cast<size_t>(i)].size());
        match.matched[static_cast<size_t>(i)] = true;
      }
    }
    std::string res = ExpandTemplate(repl, match);
    e.labels = res.empty() ? e.labels.Without(dst) : e.labels.With(dst, res);
  }
  return Finish(*std::move(vec));
}

absl::StatusOr<Value> FuncLabelJoin(const Call& call, int64_t t, FunctionContext& ctx) {
  if (absl::Status st = CheckArgs(call, 3, std::numeric_limits<size_t>::max()); !st.ok()) {
    return st;
  }
  std::vector<std::string> strs;
  for (size_t i = 1; i < call.args.size(); ++i) {
    absl::StatusOr<std::string> s = ArgString(*call.args[i]);
    if (!s.ok()) return s.status();
    strs.push_back(*std::move(s));
  }
  const std::string& dst = strs[0];
  const std::string& sep = strs[1];
  std::vector<std::string> srcs(strs.begin() + 2, strs.end());
  for (const std::string& src : srcs) {
    if (!IsValidLabelName(src)) {
      return absl::FailedPreconditionError(
          absl::StrCat("invalid source label name in label_join(): ", src));
    }
  }
  if (!IsValidLabelName(dst)) {
    return absl::FailedPreconditionError(
        absl::StrCat("invalid destination label name in label_join(): ", dst));
  }
  absl::StatusOr<Vector> vec = ArgVector(ctx, *call.args[0], t);
  if (!vec.ok()) return vec.status();
  std::vector<std::string> values(srcs.size());
  for (VectorElement& e : *vec) {
    e.t = t;
    for (size_t i = 0; i < srcs.size(); ++i) values[i] = std::string(e.labels.Get(srcs[i]));
    std::string joined = absl::StrJoin(values, sep);
    e.labels = joined.empty() ? e.labels.Without(dst) : e.labels.With(dst, joined);
  }
  return Finish(*std::move(vec));
}

// ---- histogram_quantile ----

absl::StatusOr<Value> FuncHistogramQuantile(const Call& call, int64_t t, FunctionContext& ctx) {
  if (absl::Status st = CheckArgs(call, 2, 2); !st.ok()) return st;
  absl::StatusOr<double> q = ArgScalar(ctx, *call.args[0], t);
  if (!q.ok()) return q.status();
  absl::StatusOr<Vector> vec = ArgVector(ctx, *call.args[1], t);
  if (!vec.ok()) return vec.status();
  struct Group {
    Labels labels;
    std::vector<Bucket> buckets;
  };
  std::vector<Group> groups;
  // Keyed by the labels without `le` (metric name included, so that two histograms differing
  // only in name are not merged; Prometheus issue 9910).
  absl::flat_hash_map<std::string, size_t> index;
  static const std::vector<std::string> kExcluded = {std::string(kMetricNameLabel), "le"};
  for (const VectorElement& e : *vec) {
    std::optional<double> upper = ParseGoFloat(std::string(e.labels.Get("le")));
    if (!upper.has_value()) continue;  // no or malformed bucket label: skipped
    std::string key = e.labels.Without("le").ToString();
    auto [it, inserted] = index.emplace(key, groups.size());
    if (inserted) groups.push_back(Group{e.labels.Filter(kExcluded, false), {}});
    groups[it->second].buckets.push_back(Bucket{*upper, e.v});
  }
  Vector out;
  out.reserve(groups.size());
  for (Group& g : groups) {
    out.push_back(VectorElement{std::move(g.labels), t, BucketQuantile(*q, std::move(g.buckets))});
  }
  return Finish(std::move(out));
}

// Native-histogram functions: float samples carry no native histogram, so nothing comes out.
absl::StatusOr<Value> FuncNativeHistogramOnly(const Call& call, int64_t t, FunctionContext& ctx) {
  for (const ExprPtr& a : call.args) {
    if (a == nullptr) return absl::InvalidArgumentError("missing function argument");
    absl::StatusOr<Value> v = ctx.Eval(*a, t);
    if (!v.ok()) return v.status();
  }
  return Value(Vector{});
}

// ---- Range-vector functions ----

// Applies `f(series, range)` to every series of the range argument `call.args[arg]`; series for
// which f gives nothing are left out. The metric name is dropped unless `keep_name`.
template <typename F>
absl::StatusOr<Value> OverRange(const Call& call, size_t arg, int64_t t, FunctionContext& ctx,
                                bool keep_name, F f) {
  absl::StatusOr<RangeArgument> r = ctx.EvalRange(*call.args[arg], t);
  if (!r.ok()) return r.status();
  Vector out;
  for (const WindowSeries& s : r->series) {
    if (s.samples.empty()) continue;
    absl::StatusOr<std::optional<double>> v = f(s.samples, *r);
    if (!v.ok()) return v.status();
    if (!v->has_value()) continue;
    out.push_back(VectorElement{keep_name ? *s.labels : DropName(*s.labels), t, **v});
  }
  return Finish(std::move(out));
}

using Window = std::span<const Sample>;

template <double (*F)(Window)>
absl::StatusOr<Value> Aggregate(const Call& call, int64_t t, FunctionContext& ctx) {
  if (absl::Status st = CheckArgs(call, 1, 1); !st.ok()) return st;
  return OverRange(call, 0, t, ctx, false,
                   [](Window w, const RangeArgument&) -> absl::StatusOr<std::optional<double>> {
                     return std::optional<double>(F(w));
                   });
}

double WCount(Window w) { return static_cast<double>(w.size()); }
double WPresent(Window) { return 1; }

absl::StatusOr<Value> FuncLastOverTime(const Call& call, int64_t t, FunctionContext& ctx) {
  if (absl::Status st = CheckArgs(call, 1, 1); !st.ok()) return st;
  return OverRange(call, 0, t, ctx, /*keep_name=*/true,
                   [](Window w, const RangeArgument&) -> absl::StatusOr<std::optional<double>> {
                     return std::optional<double>(w.back().v);
                   });
}

absl::StatusOr<Value> FuncQuantileOverTime(const Call& call, int64_t t, FunctionContext& ctx) {
  if (absl::Status st = CheckArgs(call, 2, 2); !st.ok()) return st;
  absl::StatusOr<double> q = ArgScalar(ctx, *call.args[0], t);
  if (!q.ok()) return q.status();
  return OverRange(call, 1, t, ctx, false,
                   [q = *q](Window w, const RangeArgument&) -> absl::StatusOr<std::optional<double>> {
                     std::vector<double> values;
                     values.reserve(w.size());
                     for (const Sample& s : w) values.push_back(s.v);
                     return std::optional<double>(Quantile(q, std::move(values)));
                   });
}

enum class RateKind { kRate, kIncrease, kDelta, kIrate, kIdelta };

template <RateKind kKind>
absl::StatusOr<Value> FuncRate(const Call& call, int64_t t, FunctionContext& ctx) {
  if (absl::Status st = CheckArgs(call, 1, 1); !st.ok()) return st;
  return OverRange(call, 0, t, ctx, false,
                   [](Window w, const RangeArgument& r) -> absl::StatusOr<std::optional<double>> {
                     switch (kKind) {
                       case RateKind::kRate:
                         return ExtrapolatedRate(w, r.range_start_ms, r.range_end_ms, true, true);
                       case RateKind::kIncrease:
                         return ExtrapolatedRate(w, r.range_start_ms, r.range_end_ms, true, false);
                       case RateKind::kDelta:
                         return ExtrapolatedRate(w, r.range_start_ms, r.range_end_ms, false,
                                                 false);
                       case RateKind::kIrate: return InstantRate(w, true);
                       case RateKind::kIdelta: return InstantRate(w, false);
                     }
                     return std::optional<double>();
                   });
}

absl::StatusOr<Value> FuncDeriv(const Call& call, int64_t t, FunctionContext& ctx) {
  if (absl::Status st = CheckArgs(call, 1, 1); !st.ok()) return st;
  return OverRange(call, 0, t, ctx, false,
                   [](Window w, const RangeArgument&) -> absl::StatusOr<std::optional<double>> {
                     return Deriv(w);
                   });
}

absl::StatusOr<Value> FuncPredictLinear(const Call& call, int64_t t, FunctionContext& ctx) {
  if (absl::Status st = CheckArgs(call, 2, 2); !st.ok()) return st;
  absl::StatusOr<double> seconds = ArgScalar(ctx, *call.args[1], t);
  if (!seconds.ok()) return seconds.status();
  // The intercept is taken at the evaluation time, not at the (offset) end of the range.
  return OverRange(
      call, 0, t, ctx, false,
      [t, d = *seconds](Window w, const RangeArgument&) -> absl::StatusOr<std::optional<double>> {
        return PredictLinear(w, t, d);
      });
}

std::string GoPercentF(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[512];
  std::snprintf(buf, sizeof(buf), "%f", v);
  return buf;
}

absl::StatusOr<Value> FuncHoltWinters(const Call& call, int64_t t, FunctionContext& ctx) {
  if (absl::Status st = CheckArgs(call, 3, 3); !st.ok()) return st;
  absl::StatusOr<double> sf = ArgScalar(ctx, *call.args[1], t);
  if (!sf.ok()) return sf.status();
  absl::StatusOr<double> tf = ArgScalar(ctx, *call.args[2], t);
  if (!tf.ok()) return tf.status();
  // Prometheus checks the factors when it first smooths a series, so a selection without
  // samples gives an empty result rather than an error.
  return OverRange(
      call, 0, t, ctx, false,
      [sf = *sf, tf = *tf](Window w,
                           const RangeArgument&) -> absl::StatusOr<std::optional<double>> {
        if (!(sf > 0 && sf < 1)) {
          return absl::FailedPreconditionError(absl::StrCat(
              "invalid smoothing factor. Expected: 0 < sf < 1, got: ", GoPercentF(sf)));
        }
        if (!(tf > 0 && tf < 1)) {
          return absl::FailedPreconditionError(
              absl::StrCat("invalid trend factor. Expected: 0 < tf < 1, got: ", GoPercentF(tf)));
        }
        return HoltWinters(w, sf, tf);
      });
}

// ---- The table ----

const absl::flat_hash_map<std::string_view, FunctionImpl>& Table() {
  static const auto* const table = new absl::flat_hash_map<std::string_view, FunctionImpl>{
      {"abs", &Simple<FAbs>},
      {"absent", &FuncAbsent},
      {"absent_over_time", &FuncAbsentOverTime},
      {"acos", &Simple<FAcos>},
      {"acosh", &Simple<FAcosh>},
      {"asin", &Simple<FAsin>},
      {"asinh", &Simple<FAsinh>},
      {"atan", &Simple<FAtan>},
      {"atanh", &Simple<FAtanh>},
      {"avg_over_time", &Aggregate<AvgOverTime>},
      {"ceil", &Simple<FCeil>},
      {"changes", &Aggregate<Changes>},
      {"clamp", &FuncClamp},
      {"clamp_max", &FuncClampOne<true>},
      {"clamp_min", &FuncClampOne<false>},
      {"cos", &Simple<FCos>},
      {"cosh", &Simple<FCosh>},
      {"count_over_time", &Aggregate<WCount>},
      {"day_of_month", &DateFunc<DDayOfMonth>},
      {"day_of_week", &DateFunc<DDayOfWeek>},
      {"day_of_year", &DateFunc<DDayOfYear>},
      {"days_in_month", &DateFunc<DDaysInMonth>},
      {"deg", &Simple<FDeg>},
      {"delta", &FuncRate<RateKind::kDelta>},
      {"deriv", &FuncDeriv},
      {"exp", &Simple<FExp>},
      {"floor", &Simple<FFloor>},
      {"histogram_count", &FuncNativeHistogramOnly},
      {"histogram_fraction", &FuncNativeHistogramOnly},
      {"histogram_quantile", &FuncHistogramQuantile},
      {"histogram_sum", &FuncNativeHistogramOnly},
      {"holt_winters", &FuncHoltWinters},
      {"hour", &DateFunc<DHour>},
      {"idelta", &FuncRate<RateKind::kIdelta>},
      {"increase", &FuncRate<RateKind::kIncrease>},
      {"irate", &FuncRate<RateKind::kIrate>},
      {"label_join", &FuncLabelJoin},
      {"label_replace", &FuncLabelReplace},
      {"last_over_time", &FuncLastOverTime},
      {"ln", &Simple<FLn>},
      {"log10", &Simple<FLog10>},
      {"log2", &Simple<FLog2>},
      {"max_over_time", &Aggregate<MaxOverTime>},
      {"min_over_time", &Aggregate<MinOverTime>},
      {"minute", &DateFunc<DMinute>},
      {"month", &DateFunc<DMonth>},
      {"pi", &FuncPi},
      {"predict_linear", &FuncPredictLinear},
      {"present_over_time", &Aggregate<WPresent>},
      {"quantile_over_time", &FuncQuantileOverTime},
      {"rad", &Simple<FRad>},
      {"rate", &FuncRate<RateKind::kRate>},
      {"resets", &Aggregate<Resets>},
      {"round", &FuncRound},
      {"scalar", &FuncScalar},
      {"sgn", &Simple<FSgn>},
      {"sin", &Simple<FSin>},
      {"sinh", &Simple<FSinh>},
      {"sort", &FuncSort<false>},
      {"sort_desc", &FuncSort<true>},
      {"sqrt", &Simple<FSqrt>},
      {"stddev_over_time", &Aggregate<StddevOverTime>},
      {"stdvar_over_time", &Aggregate<StdvarOverTime>},
      {"sum_over_time", &Aggregate<SumOverTime>},
      {"tan", &Simple<FTan>},
      {"tanh", &Simple<FTanh>},
      {"time", &FuncTime},
      {"timestamp", &FuncTimestamp},
      {"vector", &FuncVector},
      {"year", &DateFunc<DYear>},
  };
  return *table;
}

}  // namespace

bool IsEvaluableFunction(std::string_view name) { return Table().contains(name); }

absl::StatusOr<Value> EvalFunction(const Call& call, int64_t t, FunctionContext& ctx) {
  auto it = Table().find(std::string_view(call.func));
  if (it == Table().end()) {
    return absl::UnimplementedError(absl::StrCat("not implemented yet: ", call.func));
  }
  return it->second(call, t, ctx);
}

double BucketQuantile(double q, std::vector<Bucket> buckets) {
  if (std::isnan(q)) return kNaN;
  if (q < 0) return -kInf;
  if (q > 1) return kInf;
  if (buckets.empty()) return kNaN;
  std::stable_sort(buckets.begin(), buckets.end(),
                   [](const Bucket& a, const Bucket& b) { return a.upper_bound < b.upper_bound; });
  if (!(std::isinf(buckets.back().upper_bound) && buckets.back().upper_bound > 0)) return kNaN;
  // Buckets with the same bound (e.g. le="1" and le="1.0") count as one.
  size_t n = 0;
  for (size_t i = 1; i < buckets.size(); ++i) {
    if (buckets[i].upper_bound == buckets[n].upper_bound) {
      buckets[n].count += buckets[i].count;
    } else {
      buckets[++n] = buckets[i];
    }
  }
  buckets.resize(n + 1);
  // Counts must not decrease with the bound (non-atomic scrapes, rate()): take the envelope.
  double max = buckets[0].count;
  for (size_t i = 1; i < buckets.size(); ++i) {
    if (buckets[i].count > max) {
      max = buckets[i].count;
    } else if (buckets[i].count < max) {
      buckets[i].count = max;
    }
  }
  if (buckets.size() < 2) return kNaN;
  double observations = buckets.back().count;
  if (observations == 0) return kNaN;
  double rank = q * observations;
  // The first bucket (the +Inf one excluded) whose count reaches the rank.
  size_t b = 0;
  {
    size_t lo = 0, hi = buckets.size() - 1;
    while (lo < hi) {
      size_t mid = lo + (hi - lo) / 2;
      if (!(buckets[mid].count >= rank)) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    b = lo;
  }
  if (b == buckets.size() - 1) return buckets[buckets.size() - 2].upper_bound;
  if (b == 0 && buckets[0].upper_bound <= 0) return buckets[0].upper_bound;
  double bucket_start = 0;
  double bucket_end = buckets[b].upper_bound;
  double count = buckets[b].count;
  if (b > 0) {
    bucket_start = buckets[b - 1].upper_bound;
    count -= buckets[b - 1].count;
    rank -= buckets[b - 1].count;
  }
  return bucket_start + (bucket_end - bucket_start) * (rank / count);
}

double Quantile(double q, std::vector<double> values) {
  if (values.empty() || std::isnan(q)) return kNaN;
  if (q < 0) return -kInf;
  if (q > 1) return kInf;
  // Prometheus sorts NaN first.
  std::stable_sort(values.begin(), values.end(), [](double a, double b) {
    if (std::isnan(a)) return !std::isnan(b);
    if (std::isnan(b)) return false;
    return a < b;
  });
  double n = static_cast<double>(values.size());
  double rank = q * (n - 1);
  double lower = std::max(0.0, std::floor(rank));
  double upper = std::min(n - 1, lower + 1);
  double weight = rank - std::floor(rank);
  return values[static_cast<size_t>(lower)] * (1 - weight) +
         values[static_cast<size_t>(upper)] * weight;
}

std::string ExpandTemplate(std::string_view tmpl, const MatchGroups& match) {
  std::string out;
  while (!tmpl.empty()) {
    size_t dollar = tmpl.find('$');
    if (dollar == std::string_view::npos) break;
    out.append(tmpl.substr(0, dollar));
    tmpl.remove_prefix(dollar + 1);
    if (!tmpl.empty() && tmpl[0] == '$') {  // $$ is a literal $
      out.push_back('$');
      tmpl.remove_prefix(1);
      continue;
    }
    // The name: the longest run of letters, digits and '_', optionally in braces.
    std::string_view rest = tmpl;
    bool brace = !rest.empty() && rest[0] == '{';
    if (brace) rest.remove_prefix(1);
    size_t len = 0;
    while (len < rest.size() && IsNameChar(static_cast<unsigned char>(rest[len]))) ++len;
    bool ok = len > 0 && (!brace || (len < rest.size() && rest[len] == '}'));
    if (!ok) {  // malformed: the $ is kept as text
      out.push_back('$');
      continue;
    }
    std::string_view name = rest.substr(0, len);
    rest.remove_prefix(len + (brace ? 1 : 0));
    tmpl = rest;
    // A number (no leading zeros, below 1e8) names a group by index, anything else by name.
    int64_t num = 0;
    for (char c : name) {
      if (c < '0' || c > '9' || num >= 100'000'000) {
        num = -1;
        break;
      }
      num = num * 10 + (c - '0');
    }
    if (name[0] == '0' && name.size() > 1) num = -1;
    if (num >= 0) {
      if (static_cast<size_t>(num) < match.groups.size() && match.matched[static_cast<size_t>(num)]) {
        out.append(match.groups[static_cast<size_t>(num)]);
      }
    } else {
      for (const auto& [gname, index] : match.names) {
        if (gname == name && static_cast<size_t>(index) < match.groups.size() &&
            match.matched[static_cast<size_t>(index)]) {
          out.append(match.groups[static_cast<size_t>(index)]);
          break;
        }
      }
    }
  }
  out.append(tmpl);
  return out;
}

std::optional<double> ParseGoFloat(const std::string& s) {
  if (s.empty() || std::isspace(static_cast<unsigned char>(s[0])) ||
      s.find('(') != std::string::npos) {
    return std::nullopt;
  }
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return std::nullopt;
  if (errno == ERANGE && std::isinf(v)) return std::nullopt;
  return v;
}

}  // namespace tidemark::promql::internal
