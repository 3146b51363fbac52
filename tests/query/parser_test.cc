// Tests of the PromQL parser and printer: precedence trees, every construct, Prometheus's
// error messages with positions, canonical printing and print/parse round trips.
#include "query/parser.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "query/ast.h"
#include "query/functions.h"

namespace tidemark::promql {
namespace {

std::string Num(double v) {
  if (std::isnan(v)) return "NaN";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

std::string Q(const std::string& s) {
  std::string out = "'";
  for (unsigned char c : s) {
    if (c < 0x20 || c >= 0x7f || c == '\'' || c == '\\') {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\%02x", c);
      out += buf;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out + "'";
}

std::string Dump(const Expr* e);

std::string DumpAt(const AtModifier& at) {
  return "at(" + std::to_string(static_cast<int>(at.kind)) + "," + std::to_string(at.timestamp_ms) +
         ")";
}

std::string DumpLabels(const std::vector<std::string>& l) {
  std::string out = "[";
  for (const auto& s : l) out += s + ";";
  return out + "]";
}

// Every field of the tree, positions excluded: two trees are structurally equal when their
// dumps are.
std::string Dump(const Expr* e) {
  if (e == nullptr) return "null";
  if (auto* n = e->As<NumberLiteral>()) return "num(" + Num(n->value) + ")";
  if (auto* s = e->As<StringLiteral>()) return "str(" + Q(s->value) + ")";
  if (auto* vs = e->As<VectorSelector>()) {
    std::string out = "vs(" + vs->name + ",{";
    for (const auto& m : vs->matchers) {
      out += m.name() + std::to_string(static_cast<int>(m.type())) + Q(m.value()) + ";";
    }
    return out + "}," + std::to_string(vs->offset_ms) + "," + DumpAt(vs->at) + ")";
  }
  if (auto* ms = e->As<MatrixSelector>()) {
    return "ms(" + Dump(ms->selector.get()) + "," + std::to_string(ms->range_ms) + ")";
  }
  if (auto* sq = e->As<SubqueryExpr>()) {
    return "sq(" + Dump(sq->expr.get()) + "," + std::to_string(sq->range_ms) + "," +
           std::to_string(sq->step_ms) + "," + std::to_string(sq->offset_ms) + "," +
           DumpAt(sq->at) + ")";
  }
  if (auto* c = e->As<Call>()) {
    std::string out = "call(" + c->func;
    for (const auto& a : c->args) out += "," + Dump(a.get());
    return out + ")";
  }
  if (auto* a = e->As<AggregateExpr>()) {
    return "agg(" + std::string(AggregateOpName(a->op)) + "," + Dump(a->param.get()) + "," +
           Dump(a->expr.get()) + "," + DumpLabels(a->grouping) + (a->without ? "w" : "b") +
           (a->has_grouping ? "g" : "") + ")";
  }
  if (auto* b = e->As<BinaryExpr>()) {
    std::string out = "bin(" + std::string(BinaryOpName(b->op)) + (b->return_bool ? "bool" : "");
    if (b->matching) {
      const auto& vm = *b->matching;
      out += ",vm(" + std::to_string(static_cast<int>(vm.card)) + "," +
             DumpLabels(vm.matching_labels) + (vm.on ? "on" : "ign") +
             (vm.has_matching ? "m" : "") + DumpLabels(vm.include) + ")";
    }
    return out + "," + Dump(b->lhs.get()) + "," + Dump(b->rhs.get()) + ")";
  }
  if (auto* u = e->As<UnaryExpr>()) {
    return std::string(u->negate ? "neg(" : "pos(") + Dump(u->expr.get()) + ")";
  }
  if (auto* p = e->As<ParenExpr>()) return "paren(" + Dump(p->expr.get()) + ")";
  return "?";
}

// A fully parenthesised rendering of operators, to see precedence and associativity.
std::string Tree(const Expr& e) {
  if (auto* b = e.As<BinaryExpr>()) {
    return "(" + Tree(*b->lhs) + " " + std::string(BinaryOpName(b->op)) +
           (b->return_bool ? " bool" : "") + " " + Tree(*b->rhs) + ")";
  }
  if (auto* u = e.As<UnaryExpr>()) {
    return std::string("(") + (u->negate ? "-" : "+") + Tree(*u->expr) + ")";
  }
  if (auto* p = e.As<ParenExpr>()) return "paren" + Tree(*p->expr);
  return Print(e);
}

ExprPtr MustParse(const std::string& q) {
  auto r = Parse(q);
  EXPECT_TRUE(r.ok()) << q << ": " << r.status();
  if (!r.ok()) return nullptr;
  return *std::move(r);
}

std::string ParseError(const std::string& q) {
  auto r = Parse(q);
  if (r.ok()) return "OK: " + Print(**r);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(r.status().message());
}

// --- precedence and associativity ---

TEST(ParserPrecedence, Trees) {
  struct Case {
    const char* in;
    const char* tree;
  };
  const Case cases[] = {
      {"1 + 2 * 3", "(1 + (2 * 3))"},
      {"1 * 2 + 3", "((1 * 2) + 3)"},
      {"a - b - c", "((a - b) - c)"},
      {"a / b * c % d", "(((a / b) * c) % d)"},
      {"2 ^ 3 ^ 2", "(2 ^ (3 ^ 2))"},
      {"-2 ^ 2", "(-(2 ^ 2))"},
      {"-a * b", "((-a) * b)"},
      {"-a + b", "((-a) + b)"},
      {"2 * -3 ^ 2", "(2 * (-(3 ^ 2)))"},
      {"a + -b * c", "(a + ((-b) * c))"},
      {"a atan2 b * c", "((a atan2 b) * c)"},
      {"a + b atan2 c", "(a + (b atan2 c))"},
      {"a == b + c", "(a == (b + c))"},
      {"a > b or c < d and e", "((a > b) or ((c < d) and e))"},
      {"a or b and c unless d", "(a or ((b and c) unless d))"},
      {"a or b or c", "((a or b) or c)"},
      {"a and b unless c", "((a and b) unless c)"},
      {"a > bool b == bool c", "((a > bool b) == bool c)"},
      {"(a + b) * c", "(paren(a + b) * c)"},
      {"a + b offset 5m", "(a + b offset 5m)"},
      {"-a offset 5m", "(-a offset 5m)"},
      {"a + b @ 5", "(a + b @ 5.000)"},
      {"a + b[5m:1m]", nullptr},
      {"a ^ b ^ c * d", "((a ^ (b ^ c)) * d)"},
      {"+a", "(+a)"},
      {"- -a", "(-(-a))"},
  };
  for (const Case& c : cases) {
    if (c.tree == nullptr) {  // a range vector operand: a type error
      EXPECT_FALSE(Parse(c.in).ok()) << c.in;
      continue;
    }
    ExprPtr e = MustParse(c.in);
    ASSERT_NE(e, nullptr) << c.in;
    EXPECT_EQ(Tree(*e), c.tree) << c.in;
  }
}

TEST(ParserPrecedence, UnaryMinusFoldsIntoNumbers) {
  ExprPtr e = MustParse("-1");
  ASSERT_NE(e->As<NumberLiteral>(), nullptr);
  EXPECT_EQ(e->As<NumberLiteral>()->value, -1);
  e = MustParse("--1");
  ASSERT_NE(e->As<NumberLiteral>(), nullptr);
  EXPECT_EQ(e->As<NumberLiteral>()->value, 1);
  e = MustParse("-2 ^ 2");
  ASSERT_NE(e->As<UnaryExpr>(), nullptr);  // -(2^2) = -4, not (-2)^2
}

// --- literals ---

TEST(ParserLiterals, Numbers) {
  struct Case {
    const char* in;
    double want;
  };
  const Case cases[] = {
      {"1", 1},          {"42", 42},         {"1.5", 1.5},        {".5", 0.5},
      {"5.", 5},         {"0x1f", 31},       {"0X1F", 31},        {"1e3", 1000},
      {"1E-2", 0.01},    {"2.5e+2", 250},    {"010", 8},          {"09", 9},
      {"-7", -7},        {"+7", 7},          {"1e400", INFINITY}, {"Inf", INFINITY},
      {"inf", INFINITY}, {"+Inf", INFINITY}, {"-Inf", -INFINITY}, {"INF", INFINITY},
  };
  for (const Case& c : cases) {
    ExprPtr e = MustParse(c.in);
    ASSERT_NE(e, nullptr);
    auto* n = e->As<NumberLiteral>();
    ASSERT_NE(n, nullptr) << c.in;
    EXPECT_EQ(n->value, c.want) << c.in;
  }
  for (const char* nan : {"NaN", "nan", "NAN", "-NaN"}) {
    ExprPtr e = MustParse(nan);
    ASSERT_NE(e->As<NumberLiteral>(), nullptr) << nan;
    EXPECT_TRUE(std::isnan(e->As<NumberLiteral>()->value)) << nan;
  }
}

TEST(ParserLiterals, Strings) {
  struct Case {
    const char* in;
    std::string want;
  };
  const Case cases[] = {
      {R"("abc")", "abc"},
      {R"('abc')", "abc"},
      {"`abc`", "abc"},
      {R"("a\nb\tc")", "a\nb\tc"},
      {R"("q\"q")", "q\"q"},
      {R"('it\'s')", "it's"},
      {R"("back\\slash")", "back\\slash"},
      {R"("\x41\101\u00e9")", "AA\xc3\xa9"},
      {R"("\U0001F600")", "\xf0\x9f\x98\x80"},
      {"`raw\\n\"'`", "raw\\n\"'"},
      {"`multi\nline`", "multi\nline"},
      {R"("\a\b\f\r\v")", "\a\b\f\r\v"},
      {"\"\xc3\xa9t\xc3\xa9\"", "\xc3\xa9t\xc3\xa9"},
  };
  for (const Case& c : cases) {
    ExprPtr e = MustParse(c.in);
    ASSERT_NE(e, nullptr) << c.in;
    auto* s = e->As<StringLiteral>();
    ASSERT_NE(s, nullptr) << c.in;
    EXPECT_EQ(s->value, c.want) << c.in;
  }
}

TEST(ParserLiterals, Durations) {
  struct Case {
    const char* in;
    int64_t ms;
  };
  const Case cases[] = {
      {"0", 0},
      {"5m", 300000},
      {"1h30m", 5400000},
      {"1m0s", 60000},
      {"250ms", 250},
      {"1s500ms", 1500},
      {"2d", 172800000},
      {"1w", 604800000},
      {"1y", 31536000000},
      {"1y2w3d4h5m6s7ms",
       31536000000 + 2 * 604800000 + 3 * 86400000 + 4 * 3600000 + 5 * 60000 + 6000 + 7},
      {"90m", 5400000},
      {"0s", 0},
  };
  for (const Case& c : cases) {
    auto d = ParseDuration(c.in);
    ASSERT_TRUE(d.ok()) << c.in << ": " << d.status();
    EXPECT_EQ(*d, c.ms) << c.in;
  }
  for (const char* bad : {"", "5", "1.5m", "m", "5x", "1m1h", "1h1h", "-5m", "5 m", "300y"}) {
    EXPECT_FALSE(ParseDuration(bad).ok()) << bad;
  }
  EXPECT_EQ(ParseDuration("1.5m").status().message(), "not a valid duration string: \"1.5m\"");
  EXPECT_EQ(ParseDuration("300y").status().message(), "duration out of range");
}

TEST(ParserLiterals, FormatDuration) {
  EXPECT_EQ(FormatDuration(0), "0s");
  EXPECT_EQ(FormatDuration(90 * 60000), "1h30m");
  EXPECT_EQ(FormatDuration(1500), "1s500ms");
  EXPECT_EQ(FormatDuration(250), "250ms");
  EXPECT_EQ(FormatDuration(5 * 60000), "5m");
  EXPECT_EQ(FormatDuration(86400000), "1d");
  EXPECT_EQ(FormatDuration(7 * 86400000LL), "1w");
  EXPECT_EQ(FormatDuration(14 * 86400000LL), "2w");
  EXPECT_EQ(FormatDuration(90 * 86400000LL), "90d");  // weeks only when exact
  EXPECT_EQ(FormatDuration(365 * 86400000LL), "1y");
  EXPECT_EQ(FormatDuration(366 * 86400000LL), "366d");
  EXPECT_EQ(FormatDuration(86400000 + 3600000 + 1), "1d1h1ms");
  EXPECT_EQ(FormatDuration(-60000), "-1m");
}

// --- selectors and modifiers ---

TEST(ParserSelectors, VectorSelector) {
  ExprPtr e =
      MustParse(R"(http_requests_total{job="api", code=~"5..", method!="GET", path!~"/x",})");
  auto* vs = e->As<VectorSelector>();
  ASSERT_NE(vs, nullptr);
  EXPECT_EQ(vs->name, "http_requests_total");
  ASSERT_EQ(vs->matchers.size(), 5u);
  EXPECT_EQ(vs->matchers[0].name(), "__name__");
  EXPECT_EQ(vs->matchers[0].value(), "http_requests_total");
  EXPECT_EQ(vs->matchers[1].name(), "job");
  EXPECT_EQ(vs->matchers[1].type(), MatchType::kEqual);
  EXPECT_EQ(vs->matchers[2].type(), MatchType::kRegexMatch);
  EXPECT_EQ(vs->matchers[3].type(), MatchType::kNotEqual);
  EXPECT_EQ(vs->matchers[4].type(), MatchType::kRegexNoMatch);
  EXPECT_TRUE(vs->matchers[2].Matches("503"));
  EXPECT_FALSE(vs->matchers[2].Matches("1503"));  // anchored

  e = MustParse("job:rate5m:sum{}");
  ASSERT_NE(e->As<VectorSelector>(), nullptr);
  EXPECT_EQ(e->As<VectorSelector>()->name, "job:rate5m:sum");
  EXPECT_EQ(e->As<VectorSelector>()->matchers.size(), 1u);

  e = MustParse(R"({__name__="sum", job='x'})");
  EXPECT_EQ(e->As<VectorSelector>()->name, "");
  EXPECT_EQ(e->As<VectorSelector>()->matchers.size(), 2u);
  EXPECT_EQ(e->As<VectorSelector>()->matchers[1].value(), "x");

  e = MustParse(R"({a!=""})");
  EXPECT_NE(e->As<VectorSelector>(), nullptr);
}

TEST(ParserSelectors, KeywordsAsNames) {
  // Label names inside braces may be keywords.
  ExprPtr e = MustParse(R"(foo{by="1", on="2", offset="3", sum="4", bool="5", inf="6"})");
  ASSERT_NE(e->As<VectorSelector>(), nullptr);
  EXPECT_EQ(e->As<VectorSelector>()->matchers[1].name(), "by");
  EXPECT_EQ(e->As<VectorSelector>()->matchers[6].name(), "inf");
  // Metric names may be aggregators and some keywords when not followed by `(`.
  for (const char* name : {"sum", "by", "offset", "without", "start", "end", "avg", "topk"}) {
    e = MustParse(name);
    ASSERT_NE(e, nullptr) << name;
    ASSERT_NE(e->As<VectorSelector>(), nullptr) << name;
    EXPECT_EQ(e->As<VectorSelector>()->name, name);
  }
  e = MustParse(R"(sum{job="x"} + 1)");
  ASSERT_NE(e->As<BinaryExpr>(), nullptr);
  EXPECT_NE(e->As<BinaryExpr>()->lhs->As<VectorSelector>(), nullptr);
  // Grouping labels may be keywords too.
  e = MustParse("sum by (on, by, sum, offset, bool, group_left) (x)");
  ASSERT_NE(e->As<AggregateExpr>(), nullptr);
  EXPECT_EQ(e->As<AggregateExpr>()->grouping,
            (std::vector<std::string>{"on", "by", "sum", "offset", "bool", "group_left"}));
  e = MustParse("a + on(and, or) b");
  EXPECT_EQ(e->As<BinaryExpr>()->matching->matching_labels,
            (std::vector<std::string>{"and", "or"}));
}

TEST(ParserSelectors, MatrixSubqueryOffsetAt) {
  ExprPtr e = MustParse("foo[5m] offset -1h @ 100.5");
  auto* ms = e->As<MatrixSelector>();
  ASSERT_NE(ms, nullptr);
  EXPECT_EQ(ms->range_ms, 300000);
  auto* vs = ms->selector->As<VectorSelector>();
  ASSERT_NE(vs, nullptr);
  EXPECT_EQ(vs->offset_ms, -3600000);
  EXPECT_EQ(vs->at.kind, AtModifier::Kind::kTimestamp);
  EXPECT_EQ(vs->at.timestamp_ms, 100500);

  e = MustParse("foo @ start() offset 5m");
  vs = e->As<VectorSelector>();
  ASSERT_NE(vs, nullptr);
  EXPECT_EQ(vs->at.kind, AtModifier::Kind::kStart);
  EXPECT_EQ(vs->offset_ms, 300000);
  e = MustParse("foo @ END()");
  EXPECT_EQ(e->As<VectorSelector>()->at.kind, AtModifier::Kind::kEnd);
  e = MustParse("foo @ -1.5");
  EXPECT_EQ(e->As<VectorSelector>()->at.timestamp_ms, -1500);

  e = MustParse("rate(foo[1m])[30m:1m] offset 1h @ end()");
  auto* sq = e->As<SubqueryExpr>();
  ASSERT_NE(sq, nullptr);
  EXPECT_EQ(sq->range_ms, 1800000);
  EXPECT_EQ(sq->step_ms, 60000);
  EXPECT_EQ(sq->offset_ms, 3600000);
  EXPECT_EQ(sq->at.kind, AtModifier::Kind::kEnd);
  EXPECT_NE(sq->expr->As<Call>(), nullptr);

  e = MustParse("foo[ 1h30m :]");
  sq = e->As<SubqueryExpr>();
  ASSERT_NE(sq, nullptr);
  EXPECT_EQ(sq->range_ms, 5400000);
  EXPECT_EQ(sq->step_ms, 0);

  e = MustParse("(a + b)[5m:]");
  ASSERT_NE(e->As<SubqueryExpr>(), nullptr);
  EXPECT_EQ(TypeOf(*e), ValueType::kMatrix);
}

TEST(ParserExprs, AggregationsAndCalls) {
  ExprPtr e = MustParse("sum(rate(x[5m])) by (job, instance)");
  auto* agg = e->As<AggregateExpr>();
  ASSERT_NE(agg, nullptr);
  EXPECT_EQ(agg->op, AggregateOp::kSum);
  EXPECT_FALSE(agg->without);
  EXPECT_EQ(agg->grouping, (std::vector<std::string>{"job", "instance"}));
  EXPECT_EQ(agg->param, nullptr);
  EXPECT_NE(agg->expr->As<Call>(), nullptr);

  e = MustParse("topk without (a,) (5, x)");
  agg = e->As<AggregateExpr>();
  ASSERT_NE(agg, nullptr);
  EXPECT_EQ(agg->op, AggregateOp::kTopk);
  EXPECT_TRUE(agg->without);
  ASSERT_NE(agg->param, nullptr);
  EXPECT_EQ(agg->param->As<NumberLiteral>()->value, 5);

  e = MustParse(R"(count_values("value", x))");
  ASSERT_NE(e->As<AggregateExpr>(), nullptr);
  EXPECT_EQ(e->As<AggregateExpr>()->param->As<StringLiteral>()->value, "value");
  e = MustParse("quantile(0.9, x)");
  EXPECT_EQ(e->As<AggregateExpr>()->op, AggregateOp::kQuantile);
  e = MustParse("SUM BY (a) (x)");
  EXPECT_EQ(e->As<AggregateExpr>()->op, AggregateOp::kSum);
  e = MustParse("sum by () (x)");
  EXPECT_TRUE(e->As<AggregateExpr>()->has_grouping);
  for (const char* op : {"avg", "min", "max", "count", "group", "stddev", "stdvar"}) {
    EXPECT_NE(MustParse(std::string(op) + "(x)")->As<AggregateExpr>(), nullptr) << op;
  }

  e = MustParse(R"(label_join(x, "dst", ",", "a", "b", "c"))");
  ASSERT_NE(e->As<Call>(), nullptr);
  EXPECT_EQ(e->As<Call>()->args.size(), 6u);
  EXPECT_EQ(TypeOf(*MustParse("time()")), ValueType::kScalar);
  EXPECT_EQ(TypeOf(*MustParse("scalar(x)")), ValueType::kScalar);
  EXPECT_EQ(TypeOf(*MustParse("vector(1)")), ValueType::kVector);
  EXPECT_EQ(TypeOf(*MustParse("hour()")), ValueType::kVector);
  EXPECT_EQ(TypeOf(*MustParse("round(x, 5)")), ValueType::kVector);
  EXPECT_EQ(TypeOf(*MustParse("1 + 2")), ValueType::kScalar);
  EXPECT_EQ(TypeOf(*MustParse("1 + x")), ValueType::kVector);
  EXPECT_EQ(TypeOf(*MustParse("\"s\"")), ValueType::kString);
}

TEST(ParserExprs, BinaryModifiers) {
  ExprPtr e = MustParse("a * on(b, c) group_left(d) e");
  auto* b = e->As<BinaryExpr>();
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(b->matching.has_value());
  EXPECT_TRUE(b->matching->on);
  EXPECT_EQ(b->matching->card, VectorMatching::Card::kManyToOne);
  EXPECT_EQ(b->matching->matching_labels, (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(b->matching->include, (std::vector<std::string>{"d"}));

  e = MustParse("a / ignoring(b) group_right c");
  b = e->As<BinaryExpr>();
  EXPECT_FALSE(b->matching->on);
  EXPECT_EQ(b->matching->card, VectorMatching::Card::kOneToMany);
  EXPECT_TRUE(b->matching->include.empty());

  e = MustParse("a and b");
  EXPECT_EQ(e->As<BinaryExpr>()->matching->card, VectorMatching::Card::kManyToMany);
  e = MustParse("a unless on(x) b");
  EXPECT_EQ(e->As<BinaryExpr>()->matching->card, VectorMatching::Card::kManyToMany);
  e = MustParse("a + b");
  EXPECT_EQ(e->As<BinaryExpr>()->matching->card, VectorMatching::Card::kOneToOne);
  e = MustParse("a + 1");
  EXPECT_FALSE(e->As<BinaryExpr>()->matching.has_value());  // only between vectors
  e = MustParse("a > bool 1");
  EXPECT_TRUE(e->As<BinaryExpr>()->return_bool);
  e = MustParse("1 < bool 2");
  EXPECT_TRUE(e->As<BinaryExpr>()->return_bool);
  e = MustParse("a == bool on(x) b");
  EXPECT_TRUE(e->As<BinaryExpr>()->return_bool);
  EXPECT_TRUE(e->As<BinaryExpr>()->matching->on);
}

TEST(ParserExprs, CommentsAndWhitespace) {
  ExprPtr e =
      MustParse("# leading comment\nsum( # inside\n  rate(x{a=\"b\" # in braces\n}[5m])\n) # end");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(Print(*e), "sum(rate(x{a=\"b\"}[5m]))");
}

// --- errors ---

TEST(ParserErrors, MessagesAndPositions) {
  struct Case {
    const char* in;
    const char* err;
  };
  const Case cases[] = {
      {"", "unknown position: parse error: no expression found in input"},
      {"   ", "1:1: parse error: no expression found in input"},
      {"# only a comment", "1:1: parse error: no expression found in input"},
      {"1 +", "1:4: parse error: unexpected end of input"},
      {"foo bar", "1:5: parse error: unexpected identifier \"bar\""},
      {"1 2", "1:3: parse error: unexpected number \"2\""},
      {"foo \"bar\"", "1:5: parse error: unexpected string \"\\\"bar\\\"\""},
      {"foo 5m", "1:5: parse error: unexpected duration \"5m\""},
      {"foo by", "1:5: parse error: unexpected <by>"},
      {"foo bool", "1:5: parse error: unexpected <bool>"},
      {"foo == on(a) bool bar", "1:14: parse error: unexpected <bool>"},
      {"foo * group_left bar", "1:7: parse error: unexpected <group_left>"},
      {"* foo", "1:1: parse error: unexpected <op:*>"},
      {"foo = bar", "1:5: parse error: unexpected \"=\""},
      {"sum(foo bar)", "1:9: parse error: unexpected identifier \"bar\" in aggregation"},
      {"sum(rate(foo bar))", "1:14: parse error: unexpected identifier \"bar\" in aggregation"},
      {"rate(foo bar)", "1:10: parse error: unexpected identifier \"bar\""},
      {"sum by (a) foo", "1:12: parse error: unexpected identifier \"foo\" in aggregation"},
      {"sum by foo (bar)",
       "1:8: parse error: unexpected identifier \"foo\" in grouping opts, expected \"(\""},
      {"sum by (a b) (foo)",
       "1:11: parse error: unexpected identifier \"b\" in grouping opts, expected \",\" or \")\""},
      {"sum by (1) (foo)",
       "1:9: parse error: unexpected number \"1\" in grouping opts, expected label"},
      {"foo + on a bar",
       "1:10: parse error: unexpected identifier \"a\" in grouping opts, expected \"(\""},
      {"rate(foo", "1:9: parse error: unclosed left parenthesis"},
      {"foo)", "1:5: parse error: unexpected right parenthesis ')'"},
      {"foo[5m", "1:7: parse error: unclosed left bracket"},
      {"foo]", "1:4: parse error: unexpected right bracket ']'"},
      {"foo[5m:[", "1:8: parse error: unexpected left bracket '['"},
      {"foo[[", "1:5: parse error: missing unit character in duration"},
      {"foo{a=\"b\"", "1:10: parse error: unexpected end of input inside braces"},
      {"foo{a=\"b\" c=\"d\"}",
       "1:11: parse error: unexpected identifier \"c\" in label matching, expected \",\" or \"}\""},
      {"foo{a}",
       "1:6: parse error: unexpected \"}\" in label matching, expected label matching operator"},
      {"foo{a=}", "1:7: parse error: unexpected \"}\" in label matching, expected string"},
      {"foo{=\"b\"}",
       "1:5: parse error: unexpected \"=\" in label matching, expected identifier or \"}\""},
      {"foo{a=\"b\"{", "1:10: parse error: unexpected left brace '{'"},
      {"foo{a=1}", "1:7: parse error: unexpected character inside braces: '1'"},
      {"foo{a!b}", "1:6: parse error: unexpected character after '!' inside braces: 'b'"},
      {"\"abc", "1:1: parse error: unterminated quoted string"},
      {"foo + \"a\nb\"", "1:7: parse error: unterminated quoted string"},
      {"`abc", "1:1: parse error: unterminated raw string"},
      {"\"\\q\"", "1:1: parse error: unknown escape sequence U+0071 'q'"},
      {"\"\\xZZ\"", "1:1: parse error: illegal character U+005A 'Z' in escape sequence"},
      {"\"\\uD800\"", "1:1: parse error: escape sequence is an invalid Unicode code point"},
      {"\"\\x4", "1:1: parse error: escape sequence not terminated"},
      {"foo $", "1:5: parse error: unexpected character: '$'"},
      {"foo !~ bar", "1:5: parse error: unexpected character after '!': '~'"},
      {"foo =~ bar", "1:5: parse error: unexpected character after '=': '~'"},
      {"5x", "1:1: parse error: bad number or duration syntax: \"5\""},
      {"1e",
       "1:1: parse error: error parsing number: strconv.ParseFloat: parsing \"1e\": invalid "
       "syntax"},
      {"foo offset 5m offset 1m", "1:1: parse error: offset may not be set multiple times"},
      {"foo[5m] offset 5m offset 1m", "1:1: parse error: offset may not be set multiple times"},
      {"foo offset", "1:11: parse error: unexpected end of input in offset, expected duration"},
      {"foo offset 5", "1:12: parse error: unexpected number \"5\" in offset, expected duration"},
      {"foo offset 1.5m", "1:12: parse error: not a valid duration string: \"1.5m\""},
      {"foo offset 300y", "1:12: parse error: duration out of range"},
      {"sum(foo) offset 5m",
       "1:1: parse error: offset modifier must be preceded by an instant vector selector or range "
       "vector selector or a subquery"},
      {"foo @ bar", "1:7: parse error: unexpected identifier \"bar\" in @, expected timestamp"},
      {"foo @ start(", "1:13: parse error: unclosed left parenthesis"},
      {"foo @ 1 @ 2", "1:1: parse error: @ <timestamp> may not be set multiple times"},
      {"foo @ start() @ end()", "1:1: parse error: @ <timestamp> may not be set multiple times"},
      {"foo @ Inf", "1:1: parse error: timestamp out of bounds for @ modifier: +Inf"},
      {"sum(foo) @ 1",
       "1:1: parse error: @ modifier must be preceded by an instant vector selector or range "
       "vector selector or a subquery"},
      // Zero durations, refused by Prometheus 2.42 at the duration token.
      {"rate(x[0s])", "1:8: parse error: duration must be greater than 0"},
      {"x[0s]", "1:3: parse error: duration must be greater than 0"},
      {"rate(x[0ms])", "1:8: parse error: duration must be greater than 0"},
      {"x[0m:]", "1:3: parse error: duration must be greater than 0"},
      {"x[0s:1m]", "1:3: parse error: duration must be greater than 0"},
      {"x[1m:0s]", "1:6: parse error: duration must be greater than 0"},
      {"sum(x[1m:0m])", "1:10: parse error: duration must be greater than 0"},
      {"x offset 0s", "1:10: parse error: duration must be greater than 0"},
      {"x[0]", "1:3: parse error: missing unit character in duration"},
      // A duration after @ is not a timestamp (Prometheus 2.42 refuses it the same way).
      {"x @ 100s", "1:5: parse error: unexpected duration \"100s\" in @, expected timestamp"},
      {"x @ 1m", "1:5: parse error: unexpected duration \"1m\" in @, expected timestamp"},
      {"foo[5]", "1:5: parse error: missing unit character in duration"},
      {"foo[]", "1:5: parse error: missing unit character in duration"},
      {"foo[5x]", "1:5: parse error: bad duration syntax: \"5\""},
      {"foo[5m:1]",
       "1:8: parse error: unexpected number \"1\" in subquery selector, expected duration or "
       "\"]\""},
      {"foo[5m:1m:1m]", "1:10: parse error: unexpected colon ':'"},
      {"foo[5m 1m]",
       "1:8: parse error: unexpected duration \"1m\" in subquery or range, expected \":\" or "
       "\"]\""},
      {"(foo)[5m]", "1:6: parse error: ranges only allowed for vector selectors"},
      {"foo[5m][5m]", "1:8: parse error: ranges only allowed for vector selectors"},
      {"foo offset 1m [5m]", "1:15: parse error: no offset modifiers allowed before range"},
      {"foo @ 1 [5m]", "1:9: parse error: no @ modifiers allowed before range"},
      {"foo[5m][10m:]",
       "1:1: parse error: subquery is only allowed on instant vector, got matrix instead"},
      {"1[5m:]",
       "1:1: parse error: subquery is only allowed on instant vector, got scalar instead"},
      {"{}", "1:1: parse error: vector selector must contain at least one non-empty matcher"},
      {"{a=\"\"}", "1:1: parse error: vector selector must contain at least one non-empty matcher"},
      {"{a=~\".*\"}",
       "1:1: parse error: vector selector must contain at least one non-empty matcher"},
      {"1 + {a!~\".+\"}",
       "1:5: parse error: vector selector must contain at least one non-empty matcher"},
      {"foo{__name__=\"bar\"}",
       "1:1: parse error: metric name must not be set twice: \"foo\" or \"bar\""},
      {"1 == 1", "1:3: parse error: comparisons between scalars must use BOOL modifier"},
      {"foo + bool bar",
       "1:5: parse error: bool modifier can only be used on comparison operators"},
      {"foo and bool bar",
       "1:5: parse error: bool modifier can only be used on comparison operators"},
      {"1 and foo",
       "1:1: parse error: set operator \"and\" not allowed in binary scalar expression"},
      {"foo or 1", "1:1: parse error: set operator \"or\" not allowed in binary scalar expression"},
      {"foo and on(a) group_left bar",
       "1:1: parse error: no grouping allowed for \"and\" operation"},
      {"1 + on(a) foo", "1:1: parse error: vector matching only allowed between instant vectors"},
      {"foo * on(a) group_left(a) bar",
       "1:5: parse error: label \"a\" must not occur in ON and GROUP clause at once"},
      {"foo[5m] + 1",
       "1:1: parse error: binary expression must contain only scalar and instant vector types"},
      {"1 + \"a\"",
       "1:5: parse error: binary expression must contain only scalar and instant vector types"},
      {"rate(foo)",
       "1:6: parse error: expected type range vector in call to function \"rate\", got instant "
       "vector"},
      {"abs(foo[5m])",
       "1:5: parse error: expected type instant vector in call to function \"abs\", got range "
       "vector"},
      {"label_replace(foo, \"a\", \"b\", \"c\", 1)",
       "1:35: parse error: expected type string in call to function \"label_replace\", got scalar"},
      {"label_join(foo, \"a\", \",\", \"b\", 2)",
       "1:32: parse error: expected type string in call to function \"label_join\", got scalar"},
      {"rate()", "1:1: parse error: expected 1 argument(s) in call to \"rate\", got 0"},
      {"time(1)", "1:1: parse error: expected 0 argument(s) in call to \"time\", got 1"},
      {"round()", "1:1: parse error: expected at least 1 argument(s) in call to \"round\", got 0"},
      {"round(foo, 1, 2)",
       "1:1: parse error: expected at most 2 argument(s) in call to \"round\", got 3"},
      {"label_join(foo)",
       "1:1: parse error: expected at least 3 argument(s) in call to \"label_join\", got 1"},
      {"foo()", "1:1: parse error: unknown function with name \"foo\""},
      {"Rate(x[5m])", "1:1: parse error: unknown function with name \"Rate\""},
      {"rate(foo[5m],)", "1:13: parse error: trailing commas not allowed in function call args"},
      {"sum()", "1:1: parse error: no arguments for aggregate expression provided"},
      {"topk(foo)",
       "1:1: parse error: wrong number of arguments for aggregate expression provided, expected 2, "
       "got 1"},
      {"sum(1, foo)",
       "1:1: parse error: wrong number of arguments for aggregate expression provided, expected 1, "
       "got 2"},
      {"topk(\"a\", foo)",
       "1:6: parse error: expected type scalar in aggregation parameter, got string"},
      {"quantile(foo, foo)",
       "1:10: parse error: expected type scalar in aggregation parameter, got instant vector"},
      {"count_values(1, foo)",
       "1:14: parse error: expected type string in aggregation parameter, got scalar"},
      {"sum(foo[5m])",
       "1:5: parse error: expected type instant vector in aggregation expression, got range "
       "vector"},
      {"-\"foo\"",
       "1:1: parse error: unary expression only allowed on expressions of type scalar or instant "
       "vector, got \"string\""},
      {"-foo[5m]",
       "1:1: parse error: unary expression only allowed on expressions of type scalar or instant "
       "vector, got \"range vector\""},
      {"foo +\n  bar baz", "2:7: parse error: unexpected identifier \"baz\""},
      {"foo{a=~\"(\"}", nullptr},
  };
  for (const Case& c : cases) {
    std::string got = ParseError(c.in);
    if (c.err == nullptr) {
      EXPECT_EQ(got.rfind("1:5: parse error: error parsing regexp:", 0), 0u)
          << c.in << " -> " << got;
    } else {
      EXPECT_EQ(got, c.err) << "query: " << c.in;
    }
  }
}

TEST(ParserErrors, ParseSelector) {
  auto m = ParseSelector(R"(up{job="x", instance=~"a.*"})");
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->size(), 3u);
  EXPECT_EQ((*m)[0].name(), "__name__");
  EXPECT_EQ((*m)[2].type(), MatchType::kRegexMatch);
  m = ParseSelector(R"({a="b"})");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->size(), 1u);
  m = ParseSelector("sum");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ((*m)[0].value(), "sum");
  EXPECT_EQ(ParseSelector("up offset 5m").status().message(),
            "1:4: parse error: unexpected <offset>");
  EXPECT_EQ(ParseSelector("rate(x[5m])").status().message(), "1:5: parse error: unexpected \"(\"");
  EXPECT_EQ(ParseSelector("").status().message(),
            "unknown position: parse error: unexpected end of input");
  EXPECT_EQ(ParseSelector("1").status().message(), "1:1: parse error: unexpected number \"1\"");
}

// --- printer ---

TEST(Printer, CanonicalForms) {
  struct Case {
    const char* in;
    const char* out;
  };
  const Case cases[] = {
      {"sum by (job) (rate(http_requests_total{code=\"200\"}[5m] offset 1m))",
       "sum by (job) (rate(http_requests_total{code=\"200\"}[5m] offset 1m))"},
      {"sum(rate(x[5m])) by (job)", "sum by (job) (rate(x[5m]))"},
      {"SUM WITHOUT(a,b)(x)", "sum without (a, b) (x)"},
      {"sum by () (x)", "sum by () (x)"},
      {"topk(5,x)", "topk(5, x)"},
      {"count_values by (a) ('v', x)", "count_values by (a) (\"v\", x)"},
      {"a+b", "a + b"},
      {"a>bool 1", "a > bool 1"},
      {"a * on(b,c) group_left(d) e", "a * on(b, c) group_left(d) e"},
      {"a * ignoring(b) group_right e", "a * ignoring(b) group_right() e"},
      {"a * ignoring() b", "a * ignoring() b"},
      {"a * on() b", "a * on() b"},
      {"a and b", "a and b"},
      {"a ATAN2 b", "a atan2 b"},
      {"x offset -5m", "x offset -5m"},
      {"x offset 90m", "x offset 1h30m"},
      {"x[1m0s]", "x[1m]"},
      {"x[7d]", "x[1w]"},
      {"x[300ms]", "x[300ms]"},
      {"x @ 1609746000", "x @ 1609746000.000"},
      {"x @ -1.5", "x @ -1.500"},
      {"x @ 0.0011", "x @ 0.001"},
      {"x offset 5m @ start()", "x @ start() offset 5m"},
      {"x[5m] @ end() offset 1m", "x[5m] @ end() offset 1m"},
      {"rate(x[5m])[30m:1m] offset 1h @ 100", "rate(x[5m])[30m:1m] @ 100.000 offset 1h"},
      {"x[5m:]", "x[5m:]"},
      {"foo{}", "foo"},
      {"foo{a='b',}", "foo{a=\"b\"}"},
      {"{__name__=\"foo\"}", "{__name__=\"foo\"}"},
      {"foo{a=\"x\",b!=\"y\",c=~\"z\",d!~\"w\"}", "foo{a=\"x\",b!=\"y\",c=~\"z\",d!~\"w\"}"},
      {"foo{a=\"q\\\"\\\\\\n\"}", "foo{a=\"q\\\"\\\\\\n\"}"},
      {"'single'", "\"single\""},
      {"`raw\\d`", "\"raw\\\\d\""},
      {"\"\\x01\\t\"", "\"\\x01\\t\""},
      {"1", "1"},
      {"1.5", "1.5"},
      {"0x1f", "31"},
      {"1e6", "1e+06"},
      {"123456", "123456"},
      {"1234567", "1.234567e+06"},
      {"0.0001", "0.0001"},
      {"0.00001", "1e-05"},
      {"-1", "-1"},
      {"Inf", "Inf"},
      {"+Inf ^ 2", "+Inf ^ 2"},
      {"-inf", "-Inf"},
      {"nan", "NaN"},
      {"-(1)", "-(1)"},
      {"-x", "-x"},
      {"+x", "+x"},
      {"(a + b) * c", "(a + b) * c"},
      {"-2 ^ 2", "-2 ^ 2"},
      {"label_join(x, \"d\", \",\", \"a\", \"b\")", "label_join(x, \"d\", \",\", \"a\", \"b\")"},
      {"time()", "time()"},
  };
  for (const Case& c : cases) {
    ExprPtr e = MustParse(c.in);
    ASSERT_NE(e, nullptr) << c.in;
    EXPECT_EQ(Print(*e), c.out) << c.in;
  }
}

TEST(Printer, ParenthesisesSignedLeftOperandOfPow) {
  // Trees the parser never makes (it folds `-2` only where `^` cannot follow) still print to
  // text that means the same.
  auto num = [](double v) {
    auto e = std::make_unique<Expr>();
    e->node = NumberLiteral{v};
    return e;
  };
  Expr pow;
  pow.node = BinaryExpr{BinaryOp::kPow, num(-2), num(2), false, std::nullopt};
  EXPECT_EQ(Print(pow), "(-2) ^ 2");
  auto reparsed = Parse(Print(pow));
  ASSERT_TRUE(reparsed.ok());
  EXPECT_NE((*reparsed)->As<BinaryExpr>(), nullptr);
}

// --- round trips ---

std::vector<std::string> RoundTripQueries() {
  std::vector<std::string> q = {
      "1",
      "-1",
      "1.5e-7",
      "0x1f",
      ".5",
      "Inf",
      "-Inf",
      "NaN",
      "\"str\"",
      "'a\\'b'",
      "`raw`",
      "\"\\u00e9\\x00\\xff\\U0001F600\"",
      "foo",
      "foo{}",
      "foo{a=\"b\"}",
      "foo{a=\"b\",c!=\"d\",e=~\"f.*\",g!~\"h|i\"}",
      "{a=\"b\"}",
      "{__name__=~\"foo.*\"}",
      "job:rate:sum5m",
      "sum",
      "by",
      "offset",
      "start",
      "end",
      "foo offset 5m",
      "foo offset -5m",
      "foo @ 100",
      "foo @ -100.5",
      "foo @ start()",
      "foo @ end()",
      "foo @ 100 offset 1h",
      "foo offset 1h @ 100",
      "foo[5m]",
      "foo[1h30m]",
      "foo[90s]",
      "foo[1y2w]",
      "foo[5m] offset 1m",
      "foo[5m] @ 10",
      "foo[5m] @ end() offset -1d",
      "foo[5m:]",
      "foo[5m:1m]",
      "foo[5m:1m] offset 5m",
      "foo[5m:1m] @ start()",
      "rate(foo[5m])[1h:5m]",
      "max_over_time(rate(foo[5m])[1h:5m])",
      "max_over_time(deriv(rate(foo[5m])[10m:1m])[1h:])",
      "(a + b)[5m:]",
      "sum(foo)",
      "sum by (a) (foo)",
      "sum without (a) (foo)",
      "sum by () (foo)",
      "sum without () (foo)",
      "sum(foo) by (a, b)",
      "topk(5, foo)",
      "bottomk by (a) (5, foo)",
      "quantile(0.99, foo)",
      "count_values(\"v\", foo)",
      "group by (a) (foo)",
      "stddev without (x) (foo)",
      "stdvar(foo)",
      "avg(foo)",
      "min(foo)",
      "max(foo)",
      "count(foo)",
      "sum(sum(foo) by (a)) by (b)",
      "a + b",
      "a - b",
      "a * b",
      "a / b",
      "a % b",
      "a ^ b",
      "a atan2 b",
      "a == b",
      "a != b",
      "a > b",
      "a < b",
      "a >= b",
      "a <= b",
      "a and b",
      "a or b",
      "a unless b",
      "a == bool b",
      "a > bool 1",
      "1 < bool 2",
      "a + on(b) c",
      "a + ignoring(b) c",
      "a + on() c",
      "a + ignoring() c",
      "a * on(b) group_left c",
      "a * on(b) group_left(d, e) c",
      "a * ignoring(b) group_right(d) c",
      "a and on(x) b",
      "a or ignoring(y) b",
      "a unless on() b",
      "a == bool on(b) c",
      "1 + 2 * 3",
      "(1 + 2) * 3",
      "2 ^ 3 ^ 2",
      "(2 ^ 3) ^ 2",
      "-2 ^ 2",
      "(-2) ^ 2",
      "-a",
      "+a",
      "- -a",
      "-a * b",
      "a - -b",
      "a - (b - c)",
      "a - b - c",
      "a / b * c",
      "a or b and c",
      "(a or b) and c",
      "a > b or c < d and e",
      "-(a + b)",
      "-a offset 5m",
      "a + b offset 5m",
      "sum by (job) (rate(http_requests_total{code=\"200\"}[5m] offset 1m))",
      "histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
      "label_replace(up, \"foo\", \"$1\", \"bar\", \"(.*)\")",
      "label_join(up, \"foo\", \",\", \"a\", \"b\", \"c\")",
      "round(foo)",
      "round(foo, 0.5)",
      "hour()",
      "hour(foo)",
      "time()",
      "pi()",
      "vector(1)",
      "scalar(foo)",
      "absent(nonexistent{job=\"x\"})",
      "clamp(foo, 0, 1)",
      "holt_winters(foo[5m], 0.5, 0.5)",
      "predict_linear(foo[1h], 3600)",
      "quantile_over_time(0.5, foo[5m])",
      "sort_desc(sum by (a) (rate(foo[5m])))",
      "timestamp(foo)",
      "rate(foo[5m]) / on(instance) group_left(version) build_info",
      "sum(rate(a[1m])) / sum(rate(b[1m])) > bool 0.5",
      "count(up == 0) or vector(0)",
      "1 > bool 2 == bool 3",
      "foo{a=\"\\\"q\\\"\"}",
      "foo{a=\"line\\nbreak\"}",
      "sum by (on, by, offset) (foo)",
      "foo{by=\"x\", on=\"y\"}",
      "((foo))",
      "(((1)))",
      "-(-(1))",
      "1e+06",
      "1e-05",
      "123456789",
      "0.1",
      "1 + -1",
      "a + on(b) group_left() c",
      "x @ 1609746000.123",
      "foo{a=\"b\"} @ 1 offset 1m",
      "topk(1, foo) by (a)",
      "sum(foo) without (a)",
      "max_over_time((foo > 1)[10m:30s] @ end())",
      "sum without (instance) (rate(node_cpu_seconds_total{mode!=\"idle\"}[1m]))",
      "avg_over_time(foo[1d:1h] offset 1w)",
      "1 - foo",
      "2 * foo + 3",
      "a - Inf ^ 30",
      "-Inf ^ 2",
      "NaN ^ -Inf",
  };
  // Every function, with arguments of its declared types.
  for (const FunctionInfo& f : AllFunctions()) {
    std::string call = std::string(f.name) + "(";
    for (size_t i = 0; i < f.arg_types.size(); ++i) {
      if (i > 0) call += ", ";
      switch (f.arg_types[i]) {
        case ValueType::kScalar:
          call += "1";
          break;
        case ValueType::kVector:
          call += "foo";
          break;
        case ValueType::kMatrix:
          call += "foo[5m]";
          break;
        case ValueType::kString:
          call += "\"a\"";
          break;
        default:
          break;
      }
    }
    q.push_back(call + ")");
  }
  return q;
}

TEST(Printer, RoundTrips) {
  std::vector<std::string> queries = RoundTripQueries();
  EXPECT_GE(queries.size(), 150u);
  for (const std::string& q : queries) {
    auto first = Parse(q);
    ASSERT_TRUE(first.ok()) << q << ": " << first.status();
    std::string printed = Print(**first);
    auto second = Parse(printed);
    ASSERT_TRUE(second.ok()) << q << " -> " << printed << ": " << second.status();
    EXPECT_EQ(Dump(second->get()), Dump(first->get())) << q << " -> " << printed;
    EXPECT_EQ(Print(**second), printed) << q;
  }
}

TEST(Functions, Table) {
  EXPECT_GE(AllFunctions().size(), 70u);
  const FunctionInfo* rate = FindFunction("rate");
  ASSERT_NE(rate, nullptr);
  EXPECT_EQ(rate->arg_types, std::vector<ValueType>{ValueType::kMatrix});
  EXPECT_EQ(rate->return_type, ValueType::kVector);
  EXPECT_EQ(FindFunction("label_join")->variadic, -1);
  EXPECT_EQ(FindFunction("round")->variadic, 1);
  EXPECT_EQ(FindFunction("time")->return_type, ValueType::kScalar);
  EXPECT_EQ(FindFunction("nope"), nullptr);
  EXPECT_EQ(FindFunction("RATE"), nullptr);
}

}  // namespace
}  // namespace tidemark::promql

namespace tidemark::promql {
namespace {

// A query nested far deeper than any real one must be refused with a parse error, not crash the
// server by overflowing the stack (found by tests/fuzz/promql_fuzz.cc).
TEST(ParserLimits, DeepNestingIsAnErrorNotACrash) {
  for (const std::string& open : {std::string("("), std::string("-"), std::string("abs(")}) {
    std::string query;
    for (int i = 0; i < 10000; ++i) query += open;
    query += "1";
    if (open != "-") query += std::string(10000, ')');
    absl::StatusOr<ExprPtr> e = Parse(query);
    ASSERT_FALSE(e.ok()) << open;
    EXPECT_NE(e.status().message().find("nested more than 256 levels deep"), std::string::npos)
        << e.status();
  }
  std::string chain = "x";
  for (int i = 0; i < 10000; ++i) chain += "[1m:]";
  EXPECT_FALSE(Parse(chain).ok());
  std::string pow = "1";
  for (int i = 0; i < 10000; ++i) pow += "^1";
  EXPECT_FALSE(Parse(pow).ok());

  // Real queries stay far below the limit.
  std::string deep;
  for (int i = 0; i < 200; ++i) deep += "(";
  deep += "up";
  deep += std::string(200, ')');
  EXPECT_TRUE(Parse(deep).ok());
}

}  // namespace
}  // namespace tidemark::promql
