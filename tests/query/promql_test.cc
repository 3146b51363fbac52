// Runs the PromQL `.test` scripts in testdata/ (a subset of Prometheus's promqltest language)
// against Engine over a MemoryStorage; each script is one test case.
//
//   load <interval>             series lines: `metric{l="v"} 0+10x100 _ stale 1 2 _x3 1x5`
//   clear                       drop every series
//   eval instant at <t> <expr>  then expected lines `{l="v"} value` / `name{...} value` / `3`
//   eval_ordered instant ...    results must come in the given order
//   eval_fail instant ...       the query must fail (also: an `expect fail` line, optionally
//                               `expect fail msg: <text>` or `expect fail regex: <re>`)
//   eval range from <t> to <t> step <d> <expr>   expected lines `{l="v"} 1 2 _ 4`
// Values compare with a relative tolerance of 1e-6; NaN equals NaN.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "query/engine.h"
#include "re2/re2.h"
#include "storage/memory_querier.h"

namespace tidemark::promql {
namespace {

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

// `1h30m`, `5m`, `250ms`, `0`, `10` (seconds) into milliseconds.
std::optional<int64_t> ParseTime(const std::string& text) {
  if (text.empty()) return std::nullopt;
  if (std::all_of(text.begin(), text.end(), ::isdigit)) return std::stoll(text) * 1000;
  int64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = i;
    while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j]))) ++j;
    if (j == i) return std::nullopt;
    int64_t n = std::stoll(text.substr(i, j - i));
    size_t k = j;
    while (k < text.size() && std::isalpha(static_cast<unsigned char>(text[k]))) ++k;
    std::string unit = text.substr(j, k - j);
    int64_t ms = 0;
    if (unit == "ms") ms = 1;
    else if (unit == "s") ms = 1000;
    else if (unit == "m") ms = 60'000;
    else if (unit == "h") ms = 3'600'000;
    else if (unit == "d") ms = 86'400'000;
    else if (unit == "w") ms = 7 * 86'400'000LL;
    else if (unit == "y") ms = 365 * 86'400'000LL;
    else return std::nullopt;
    total += n * ms;
    i = k;
  }
  return total;
}

std::optional<double> ParseNumber(const std::string& text) {
  if (text == "NaN") return std::numeric_limits<double>::quiet_NaN();
  if (text == "Inf" || text == "+Inf") return std::numeric_limits<double>::infinity();
  if (text == "-Inf") return -std::numeric_limits<double>::infinity();
  if (text == "stale") return StaleNaN();
  try {
    size_t used = 0;
    double v = std::stod(text, &used);
    if (used != text.size()) return std::nullopt;
    return v;
  } catch (...) {
    return std::nullopt;
  }
}

// One expanded point of a series description: a value or an omitted slot (`_`).
struct Point {
  bool omitted = false;
  double v = 0;
};

// Expands `0+10x3 _ stale 1 _x2 5x2` into points.
std::optional<std::vector<Point>> ExpandValues(const std::string& text) {
  std::vector<Point> out;
  std::istringstream in(text);
  std::string tok;
  RE2 sequence(R"(([-+]?[0-9.eE]+|[-+]?Inf|NaN)(?:([-+])([0-9.eE]+|Inf|NaN))?x([0-9]+))");
  RE2 blanks(R"(_x([0-9]+))");
  while (in >> tok) {
    std::string a, sign, b;
    int n = 0;
    if (tok == "_") {
      out.push_back({true, 0});
    } else if (RE2::FullMatch(tok, blanks, &n)) {
      for (int i = 0; i < n; ++i) out.push_back({true, 0});
    } else if (RE2::FullMatch(tok, sequence, &a, &sign, &b, &n)) {
      std::optional<double> start = ParseNumber(a);
      std::optional<double> inc = b.empty() ? std::optional<double>(0) : ParseNumber(b);
      if (!start || !inc) return std::nullopt;
      double d = sign == "-" ? -*inc : *inc;
      for (int i = 0; i <= n; ++i) out.push_back({false, *start + d * i});
    } else if (std::optional<double> v = ParseNumber(tok)) {
      out.push_back({false, *v});
    } else {
      return std::nullopt;
    }
  }
  return out;
}

// Splits `name{a="b"} rest` into labels and the rest of the line.
std::optional<std::pair<Labels, std::string>> ParseSeriesLine(const std::string& line) {
  size_t i = 0;
  std::string name;
  while (i < line.size() && line[i] != '{' && line[i] != ' ' && line[i] != '\t') name += line[i++];
  std::vector<Label> labels;
  if (!name.empty()) labels.push_back({std::string(kMetricNameLabel), name});
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (true) {
      while (i < line.size() && (line[i] == ' ' || line[i] == ',')) ++i;
      if (i >= line.size()) return std::nullopt;
      if (line[i] == '}') {
        ++i;
        break;
      }
      std::string lname;
      while (i < line.size() && line[i] != '=' && line[i] != ' ') lname += line[i++];
      while (i < line.size() && line[i] == ' ') ++i;
      if (i >= line.size() || line[i] != '=') return std::nullopt;
      ++i;
      while (i < line.size() && line[i] == ' ') ++i;
      if (i >= line.size() || (line[i] != '"' && line[i] != '\'')) return std::nullopt;
      char quote = line[i++];
      std::string value;
      while (i < line.size() && line[i] != quote) {
        if (line[i] == '\\' && i + 1 < line.size()) {
          ++i;
          value += line[i] == 'n' ? '\n' : line[i];
        } else {
          value += line[i];
        }
        ++i;
      }
      if (i >= line.size()) return std::nullopt;
      ++i;
      labels.push_back({lname, value});
    }
  }
  return std::make_pair(Labels::FromUnsorted(std::move(labels)), line.substr(i));
}

bool AlmostEqual(double a, double b) {
  constexpr double kEpsilon = 1e-6;
  constexpr double kMinNormal = 2.2250738585072014e-308;
  if (std::isnan(a) && std::isnan(b)) return true;
  if (a == b) return true;
  double abs_sum = std::abs(a) + std::abs(b);
  double diff = std::abs(a - b);
  if (a == 0 || b == 0 || abs_sum < kMinNormal) return diff < kEpsilon * kMinNormal;
  return diff / std::min(abs_sum, std::numeric_limits<double>::max()) < kEpsilon;
}

struct Expected {
  int line = 0;
  bool scalar = false;
  Labels labels;
  std::vector<Point> points;
};

struct EvalCommand {
  int line = 0;
  bool range = false;
  int64_t start = 0, end = 0, step = 0;
  std::string query;
  bool expect_fail = false;
  std::string fail_msg, fail_regex;
  bool ordered = false;
  std::vector<Expected> expected;
};

class ScriptRunner {
 public:
  explicit ScriptRunner(std::string file) : file_(std::move(file)) {}

  void Run() {
    std::ifstream in(file_);
    ASSERT_TRUE(in.good()) << "cannot open " << file_;
    std::string raw;
    while (std::getline(in, raw)) lines_.push_back(raw);
    size_t i = 0;
    while (i < lines_.size()) {
      std::string line = Trim(lines_[i]);
      if (line.empty() || line[0] == '#') {
        ++i;
        continue;
      }
      size_t block_end = i + 1;
      while (block_end < lines_.size() && !IsBlockEnd(block_end)) ++block_end;
      if (line.rfind("load ", 0) == 0) {
        Load(i, block_end);
      } else if (line == "clear") {
        storage_.Clear();
      } else if (line.rfind("eval", 0) == 0) {
        Eval(i, block_end);
      } else {
        ADD_FAILURE() << Where(i) << "unknown command: " << line;
      }
      i = block_end;
    }
  }

 private:
  bool IsBlockEnd(size_t i) const {
    std::string t = Trim(lines_[i]);
    return t.empty() || t.rfind("load ", 0) == 0 || t == "clear" || t.rfind("eval", 0) == 0;
  }

  std::string Where(size_t i) const { return absl::StrCat(file_, ":", i + 1, ": "); }

  void Load(size_t first, size_t end) {
    std::string line = Trim(lines_[first]);
    std::optional<int64_t> interval = ParseTime(Trim(line.substr(5)));
    if (!interval) {
      ADD_FAILURE() << Where(first) << "bad load interval";
      return;
    }
    for (size_t i = first + 1; i < end; ++i) {
      std::string text = Trim(lines_[i]);
      if (text.empty() || text[0] == '#') continue;
      auto series = ParseSeriesLine(text);
      std::optional<std::vector<Point>> points;
      if (series) points = ExpandValues(series->second);
      if (!series || !points) {
        ADD_FAILURE() << Where(i) << "bad series line: " << text;
        continue;
      }
      std::vector<Sample> samples;
      for (size_t k = 0; k < points->size(); ++k) {
        if (!(*points)[k].omitted) {
          samples.push_back(Sample{static_cast<int64_t>(k) * *interval, (*points)[k].v});
        }
      }
      absl::Status st = storage_.Add(series->first, std::move(samples));
      EXPECT_TRUE(st.ok()) << Where(i) << st;
    }
  }

  std::optional<EvalCommand> ParseEval(size_t first, size_t end) {
    std::string line = Trim(lines_[first]);
    EvalCommand cmd;
    cmd.line = static_cast<int>(first + 1);
    std::string variant, t1, t2, step, query;
    static const RE2 instant_re(R"(eval(_fail|_ordered)?\s+instant\s+at\s+(\S+)\s+(.+))");
    static const RE2 range_re(
        R"(eval(_fail|_ordered)?\s+range\s+from\s+(\S+)\s+to\s+(\S+)\s+step\s+(\S+)\s+(.+))");
    if (RE2::FullMatch(line, instant_re, &variant, &t1, &query)) {
      std::optional<int64_t> t = ParseTime(t1);
      if (!t) return std::nullopt;
      cmd.start = cmd.end = *t;
    } else if (RE2::FullMatch(line, range_re, &variant, &t1, &t2, &step, &query)) {
      std::optional<int64_t> s = ParseTime(t1), e = ParseTime(t2), st = ParseTime(step);
      if (!s || !e || !st) return std::nullopt;
      cmd.range = true;
      cmd.start = *s;
      cmd.end = *e;
      cmd.step = *st;
    } else {
      return std::nullopt;
    }
    cmd.query = query;
    cmd.expect_fail = variant == "_fail";
    cmd.ordered = variant == "_ordered";
    for (size_t i = first + 1; i < end; ++i) {
      std::string text = Trim(lines_[i]);
      if (text.empty() || text[0] == '#') continue;
      std::string rest;
      if (text == "expect fail") {
        cmd.expect_fail = true;
      } else if (RE2::FullMatch(text, R"(expect fail msg:\s*(.*))", &rest)) {
        cmd.expect_fail = true;
        cmd.fail_msg = rest;
      } else if (RE2::FullMatch(text, R"(expect fail regex:\s*(.*))", &rest)) {
        cmd.expect_fail = true;
        cmd.fail_regex = rest;
      } else if (text == "expect ordered") {
        cmd.ordered = true;
      } else if (std::optional<double> v = ParseNumber(text); v && !cmd.range) {
        cmd.expected.push_back(Expected{static_cast<int>(i + 1), true, Labels(), {{false, *v}}});
      } else {
        auto series = ParseSeriesLine(text);
        std::optional<std::vector<Point>> points;
        if (series) points = ExpandValues(series->second);
        if (!series || !points || points->empty()) {
          ADD_FAILURE() << Where(i) << "bad expected line: " << text;
          continue;
        }
        cmd.expected.push_back(
            Expected{static_cast<int>(i + 1), false, series->first, std::move(*points)});
      }
    }
    return cmd;
  }

  void Eval(size_t first, size_t end) {
    std::optional<EvalCommand> cmd = ParseEval(first, end);
    if (!cmd) {
      ADD_FAILURE() << Where(first) << "bad eval command: " << Trim(lines_[first]);
      return;
    }
    SCOPED_TRACE(absl::StrCat(Where(first), cmd->query));
    absl::StatusOr<QueryResult> result =
        cmd->range ? engine_.Range(storage_, cmd->query, cmd->start, cmd->end, cmd->step)
                   : engine_.Instant(storage_, cmd->query, cmd->start);
    if (cmd->expect_fail) {
      ASSERT_FALSE(result.ok()) << "expected an error, got a result";
      std::string msg(result.status().message());
      if (!cmd->fail_msg.empty()) {
        EXPECT_EQ(msg, cmd->fail_msg);
      }
      if (!cmd->fail_regex.empty()) {
        EXPECT_TRUE(RE2::PartialMatch(msg, cmd->fail_regex)) << msg;
      }
      return;
    }
    ASSERT_TRUE(result.ok()) << result.status();
    if (cmd->range) {
      CheckRange(*cmd, result->value);
      return;
    }
    CheckInstant(*cmd, result->value);
    // The same query as a one-step range query must agree with the instant query.
    if (std::holds_alternative<Scalar>(result->value) ||
        std::holds_alternative<Vector>(result->value)) {
      absl::StatusOr<QueryResult> as_range =
          engine_.Range(storage_, cmd->query, cmd->start, cmd->start, 60'000);
      ASSERT_TRUE(as_range.ok()) << as_range.status();
      const auto& m = std::get<Matrix>(as_range->value);
      if (const auto* s = std::get_if<Scalar>(&result->value)) {
        ASSERT_EQ(m.size(), 1u);
        ASSERT_EQ(m[0].samples.size(), 1u);
        EXPECT_TRUE(AlmostEqual(m[0].samples[0].v, s->v));
      } else {
        // A range query orders series by labels, whatever order the instant query keeps.
        Vector v = std::get<Vector>(result->value);
        std::sort(v.begin(), v.end(), [](const VectorElement& a, const VectorElement& b) {
          return a.labels < b.labels;
        });
        ASSERT_EQ(m.size(), v.size()) << "range query disagrees with instant query";
        for (size_t i = 0; i < v.size(); ++i) {
          EXPECT_EQ(m[i].labels, v[i].labels);
          ASSERT_EQ(m[i].samples.size(), 1u);
          EXPECT_TRUE(AlmostEqual(m[i].samples[0].v, v[i].v)) << v[i].labels.ToString();
        }
      }
    }
  }

  void CheckInstant(const EvalCommand& cmd, const Value& value) {
    if (const auto* s = std::get_if<Scalar>(&value)) {
      ASSERT_EQ(cmd.expected.size(), 1u) << "got scalar " << s->v;
      EXPECT_TRUE(cmd.expected[0].scalar) << "got a scalar, expected a vector";
      EXPECT_TRUE(AlmostEqual(s->v, cmd.expected[0].points[0].v))
          << "line " << cmd.expected[0].line << ": got " << s->v << ", want "
          << cmd.expected[0].points[0].v;
      EXPECT_EQ(s->t, cmd.start);
      return;
    }
    if (const auto* m = std::get_if<Matrix>(&value)) {
      // A range vector at an instant: expected lines list the samples' values in order.
      std::map<Labels, const Expected*> want;
      for (const Expected& e : cmd.expected) want[e.labels] = &e;
      EXPECT_EQ(m->size(), want.size());
      for (const MatrixSeries& s : *m) {
        auto it = want.find(s.labels);
        if (it == want.end()) {
          ADD_FAILURE() << "unexpected series " << s.labels.ToString();
          continue;
        }
        std::vector<double> want_values;
        for (const Point& p : it->second->points) {
          if (!p.omitted) want_values.push_back(p.v);
        }
        ASSERT_EQ(s.samples.size(), want_values.size()) << s.labels.ToString();
        for (size_t i = 0; i < want_values.size(); ++i) {
          EXPECT_TRUE(AlmostEqual(s.samples[i].v, want_values[i])) << s.labels.ToString();
        }
      }
      return;
    }
    const auto* vec = std::get_if<Vector>(&value);
    ASSERT_NE(vec, nullptr) << "unexpected result type";
    std::map<Labels, const Expected*> want;
    for (const Expected& e : cmd.expected) {
      EXPECT_FALSE(e.scalar) << "line " << e.line << ": expected a scalar, got a vector";
      EXPECT_TRUE(want.emplace(e.labels, &e).second) << "line " << e.line << ": duplicate";
    }
    for (const VectorElement& el : *vec) {
      EXPECT_EQ(el.t, cmd.start);
      auto it = want.find(el.labels);
      if (it == want.end()) {
        ADD_FAILURE() << "unexpected element " << el.labels.ToString() << " " << el.v;
        continue;
      }
      EXPECT_TRUE(AlmostEqual(el.v, it->second->points[0].v))
          << "line " << it->second->line << ": " << el.labels.ToString() << " got " << el.v
          << ", want " << it->second->points[0].v;
    }
    for (const Expected& e : cmd.expected) {
      bool found = std::any_of(vec->begin(), vec->end(),
                               [&](const VectorElement& el) { return el.labels == e.labels; });
      EXPECT_TRUE(found) << "line " << e.line << ": missing " << e.labels.ToString();
    }
    if (cmd.ordered && vec->size() == cmd.expected.size()) {
      for (size_t i = 0; i < vec->size(); ++i) {
        EXPECT_EQ((*vec)[i].labels, cmd.expected[i].labels) << "order differs at " << i;
      }
    }
  }

  void CheckRange(const EvalCommand& cmd, const Value& value) {
    const auto* m = std::get_if<Matrix>(&value);
    ASSERT_NE(m, nullptr) << "range query did not return a matrix";
    std::map<Labels, const Expected*> want;
    for (const Expected& e : cmd.expected) want[e.labels] = &e;
    for (const MatrixSeries& s : *m) {
      auto it = want.find(s.labels);
      if (it == want.end()) {
        ADD_FAILURE() << "unexpected series " << s.labels.ToString();
        continue;
      }
      std::vector<Sample> want_samples;
      const std::vector<Point>& points = it->second->points;
      for (size_t i = 0; i < points.size(); ++i) {
        if (!points[i].omitted) {
          want_samples.push_back(Sample{cmd.start + static_cast<int64_t>(i) * cmd.step,
                                        points[i].v});
        }
      }
      ASSERT_EQ(s.samples.size(), want_samples.size())
          << "line " << it->second->line << ": " << s.labels.ToString();
      for (size_t i = 0; i < want_samples.size(); ++i) {
        EXPECT_EQ(s.samples[i].t, want_samples[i].t) << s.labels.ToString();
        EXPECT_TRUE(AlmostEqual(s.samples[i].v, want_samples[i].v))
            << "line " << it->second->line << ": " << s.labels.ToString() << " at "
            << want_samples[i].t << " got " << s.samples[i].v << ", want " << want_samples[i].v;
      }
    }
    for (const Expected& e : cmd.expected) {
      bool found = std::any_of(m->begin(), m->end(),
                               [&](const MatrixSeries& s) { return s.labels == e.labels; });
      EXPECT_TRUE(found) << "line " << e.line << ": missing " << e.labels.ToString();
    }
  }

  std::string file_;
  std::vector<std::string> lines_;
  MemoryStorage storage_;
  Engine engine_;
};

std::vector<std::string> ScriptFiles() {
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& entry :
       std::filesystem::directory_iterator(TIDEMARK_PROMQL_TESTDATA_DIR, ec)) {
    if (entry.path().extension() == ".test") files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

class PromqlScriptTest : public ::testing::TestWithParam<std::string> {};

TEST_P(PromqlScriptTest, Passes) { ScriptRunner(GetParam()).Run(); }

INSTANTIATE_TEST_SUITE_P(
    Scripts, PromqlScriptTest, ::testing::ValuesIn(ScriptFiles()),
    [](const ::testing::TestParamInfo<std::string>& info) {
      return std::filesystem::path(info.param).stem().string();
    });

TEST(PromqlScripts, AreFound) { EXPECT_GE(ScriptFiles().size(), 7u); }

}  // namespace
}  // namespace tidemark::promql
