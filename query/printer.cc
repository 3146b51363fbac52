// Print: canonical PromQL text for an AST, in the shape of Prometheus's Expr.String().
#include <charconv>
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "query/lexer.h"
#include "query/parser.h"

namespace tidemark::promql {
namespace {

// Go's fmt %v of a float64 (strconv 'g', shortest): the shortest digits that round-trip, in
// exponent form when the exponent is < -4 or >= 6 ("1e+06", "1e-05"), else plain.
std::string FormatNumber(double v) {
  if (std::isnan(v)) return "NaN";
  // "Inf" rather than Go's "+Inf": `+Inf ^ 2` would re-parse as +(Inf ^ 2).
  if (std::isinf(v)) return v > 0 ? "Inf" : "-Inf";
  if (v == 0) return std::signbit(v) ? "-0" : "0";
  char buf[64];
  auto sci = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  std::string s(buf, sci.ptr);
  size_t e = s.find('e');
  int exp = std::stoi(s.substr(e + 1));
  if (exp < -4 || exp >= 6) return s;
  auto fixed = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed);
  return std::string(buf, fixed.ptr);
}

std::string FormatOffset(int64_t ms) {
  if (ms > 0) return " offset " + FormatDuration(ms);
  if (ms < 0) return " offset -" + FormatDuration(-ms);
  return "";
}

std::string FormatAt(const AtModifier& at) {
  switch (at.kind) {
    case AtModifier::Kind::kNone:
      return "";
    case AtModifier::Kind::kStart:
      return " @ start()";
    case AtModifier::Kind::kEnd:
      return " @ end()";
    case AtModifier::Kind::kTimestamp: {
      // Go's %.3f of the seconds, computed exactly from the milliseconds.
      int64_t ms = at.timestamp_ms;
      std::string sign = ms < 0 ? "-" : "";
      uint64_t abs = ms < 0 ? static_cast<uint64_t>(-(ms + 1)) + 1 : static_cast<uint64_t>(ms);
      std::string frac = std::to_string(abs % 1000);
      while (frac.size() < 3) frac.insert(frac.begin(), '0');
      return absl::StrCat(" @ ", sign, abs / 1000, ".", frac);
    }
  }
  return "";
}

std::string MatcherString(const LabelMatcher& m) {
  std::string_view op = "=";
  switch (m.type()) {
    case MatchType::kEqual:
      op = "=";
      break;
    case MatchType::kNotEqual:
      op = "!=";
      break;
    case MatchType::kRegexMatch:
      op = "=~";
      break;
    case MatchType::kRegexNoMatch:
      op = "!~";
      break;
  }
  return absl::StrCat(m.name(), std::string(op), internal::GoQuote(m.value()));
}

// The selector without its offset and @.
std::string SelectorBody(const VectorSelector& vs) {
  std::vector<std::string> parts;
  bool skipped_name = false;
  for (const LabelMatcher& m : vs.matchers) {
    if (!skipped_name && !vs.name.empty() && m.name() == "__name__" &&
        m.type() == MatchType::kEqual && m.value() == vs.name) {
      skipped_name = true;
      continue;
    }
    parts.push_back(MatcherString(m));
  }
  if (parts.empty()) return vs.name.empty() ? "{}" : vs.name;
  return absl::StrCat(vs.name, "{", absl::StrJoin(parts, ","), "}");
}

std::string Labels(const std::vector<std::string>& labels) {
  return absl::StrCat("(", absl::StrJoin(labels, ", "), ")");
}

void PrintTo(const Expr& expr, std::string* out);

std::string P(const Expr* e) {
  if (e == nullptr) return "<nil>";
  std::string s;
  PrintTo(*e, &s);
  return s;
}

void PrintTo(const Expr& expr, std::string* out) {
  struct Visitor {
    std::string* out;
    void operator()(const NumberLiteral& n) { *out += FormatNumber(n.value); }
    void operator()(const StringLiteral& s) { *out += internal::GoQuote(s.value); }
    void operator()(const VectorSelector& vs) {
      absl::StrAppend(out, SelectorBody(vs), FormatAt(vs.at), FormatOffset(vs.offset_ms));
    }
    void operator()(const MatrixSelector& ms) {
      const auto* vs = ms.selector ? ms.selector->As<VectorSelector>() : nullptr;
      if (vs == nullptr) {
        absl::StrAppend(out, P(ms.selector.get()), "[", FormatDuration(ms.range_ms), "]");
        return;
      }
      absl::StrAppend(out, SelectorBody(*vs), "[", FormatDuration(ms.range_ms), "]",
                      FormatAt(vs->at), FormatOffset(vs->offset_ms));
    }
    void operator()(const SubqueryExpr& sq) {
      absl::StrAppend(out, P(sq.expr.get()), "[", FormatDuration(sq.range_ms), ":",
                      sq.step_ms != 0 ? FormatDuration(sq.step_ms) : "", "]", FormatAt(sq.at),
                      FormatOffset(sq.offset_ms));
    }
    void operator()(const Call& c) {
      std::vector<std::string> args;
      for (const ExprPtr& a : c.args) args.push_back(P(a.get()));
      absl::StrAppend(out, c.func, "(", absl::StrJoin(args, ", "), ")");
    }
    void operator()(const AggregateExpr& a) {
      *out += std::string(AggregateOpName(a.op));
      if (a.without) {
        absl::StrAppend(out, " without ", Labels(a.grouping), " ");
      } else if (a.has_grouping || !a.grouping.empty()) {
        absl::StrAppend(out, " by ", Labels(a.grouping), " ");
      }
      *out += "(";
      if (a.param) absl::StrAppend(out, P(a.param.get()), ", ");
      absl::StrAppend(out, P(a.expr.get()), ")");
    }
    void operator()(const BinaryExpr& b) {
      // A sign binds looser than `^`: a negative literal or unary operand on the left of `^`
      // (only in trees not made by the parser) needs parentheses to print back the same.
      std::string lhs = P(b.lhs.get());
      const auto* lhs_num = b.lhs ? b.lhs->As<NumberLiteral>() : nullptr;
      if (b.op == BinaryOp::kPow && b.lhs &&
          (b.lhs->As<UnaryExpr>() != nullptr ||
           (lhs_num != nullptr && std::signbit(lhs_num->value)))) {
        lhs = "(" + lhs + ")";
      }
      absl::StrAppend(out, lhs, " ", std::string(BinaryOpName(b.op)));
      if (b.return_bool) *out += " bool";
      if (b.matching.has_value()) {
        const VectorMatching& vm = *b.matching;
        bool grouped = vm.card == VectorMatching::Card::kManyToOne ||
                       vm.card == VectorMatching::Card::kOneToMany;
        if (vm.has_matching || vm.on || !vm.matching_labels.empty() || grouped) {
          absl::StrAppend(out, vm.on ? " on" : " ignoring", Labels(vm.matching_labels));
          if (grouped) {
            absl::StrAppend(
                out, vm.card == VectorMatching::Card::kManyToOne ? " group_left" : " group_right",
                Labels(vm.include));
          }
        }
      }
      absl::StrAppend(out, " ", P(b.rhs.get()));
    }
    void operator()(const UnaryExpr& u) {
      absl::StrAppend(out, u.negate ? "-" : "+", P(u.expr.get()));
    }
    void operator()(const ParenExpr& p) { absl::StrAppend(out, "(", P(p.expr.get()), ")"); }
  };
  std::visit(Visitor{out}, expr.node);
}

}  // namespace

std::string Print(const Expr& expr) {
  std::string out;
  PrintTo(expr, &out);
  return out;
}

}  // namespace tidemark::promql
