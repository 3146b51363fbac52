// The PromQL parser: a recursive-descent rendering of Prometheus's yacc grammar
// (promql/parser/generated_parser.y) with its precedence table, followed by the same type
// checks as Prometheus's checkAST. Error messages and positions follow Prometheus 2.42.
#include "query/parser.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <limits>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "query/functions.h"
#include "query/lexer.h"

namespace tidemark::promql {
namespace {

using internal::Lexer;
using internal::Tok;
using internal::Token;

constexpr int64_t kMsPerSecond = 1000;
constexpr int64_t kMsPerMinute = 60 * kMsPerSecond;
constexpr int64_t kMsPerHour = 60 * kMsPerMinute;
constexpr int64_t kMsPerDay = 24 * kMsPerHour;
constexpr int64_t kMsPerWeek = 7 * kMsPerDay;
constexpr int64_t kMsPerYear = 365 * kMsPerDay;

// "line:col" of a byte offset, 1-based, as Prometheus's PositionRange.StartPosInput.
std::string PosString(std::string_view query, int pos) {
  if (query.empty()) return "unknown position";
  if (pos < 0 || pos > static_cast<int>(query.size())) return "invalid position";
  int line = 1;
  int last_break = -1;
  for (int i = 0; i < pos; ++i) {
    if (query[i] == '\n') {
      ++line;
      last_break = i;
    }
  }
  return absl::StrCat(line, ":", pos - last_break);
}

// Go's strconv.ParseInt(s, 0, 64) for the digits the lexer produces.
bool ParseGoInt(std::string_view s, int64_t* out) {
  int base = 10;
  std::string_view digits = s;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    digits = s.substr(2);
  } else if (s.size() > 1 && s[0] == '0') {
    base = 8;
    digits = s.substr(1);
  }
  if (digits.empty()) return false;
  uint64_t v = 0;
  for (char c : digits) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return false;
    }
    if (d >= base) return false;
    if (v > (static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) - d) / base) return false;
    v = v * base + d;
  }
  *out = static_cast<int64_t>(v);
  return true;
}

// Go's strconv.ParseFloat for decimal literals, Inf and NaN.
bool ParseGoFloat(std::string_view s, double* out) {
  std::string lower(s);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "inf" || lower == "+inf" || lower == "infinity") {
    *out = std::numeric_limits<double>::infinity();
    return true;
  }
  if (lower == "nan") {
    *out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  // Decimal syntax only: digits, one dot, optional exponent with digits.
  size_t i = 0;
  bool digits = false;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, digits = true;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, digits = true;
  }
  if (!digits) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    bool exp_digits = false;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, exp_digits = true;
    if (!exp_digits) return false;
  }
  if (i != s.size()) return false;
  std::string str(s);
  errno = 0;
  *out = std::strtod(str.c_str(), nullptr);
  return true;  // overflow gives ±Inf as Go's ParseFloat value (Go reports a range error).
}

bool IsLabelName(std::string_view s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

std::string DocumentedType(ValueType t) {
  switch (t) {
    case ValueType::kVector:
      return "instant vector";
    case ValueType::kMatrix:
      return "range vector";
    default:
      return std::string(ValueTypeName(t));
  }
}

// Go's %f.
std::string FormatGoF(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[400];
  std::snprintf(buf, sizeof(buf), "%f", v);
  return buf;
}

int BinaryPrecedence(Tok t) {
  switch (t) {
    case Tok::kLor:
      return 1;
    case Tok::kLand:
    case Tok::kLunless:
      return 2;
    case Tok::kEqlc:
    case Tok::kNeq:
    case Tok::kLss:
    case Tok::kLte:
    case Tok::kGtr:
    case Tok::kGte:
      return 3;
    case Tok::kAdd:
    case Tok::kSub:
      return 4;
    case Tok::kMul:
    case Tok::kDiv:
    case Tok::kMod:
    case Tok::kAtan2:
      return 5;
    case Tok::kPow:
      return 6;
    default:
      return 0;
  }
}
constexpr int kPowPrecedence = 6;

BinaryOp ToBinaryOp(Tok t) {
  switch (t) {
    case Tok::kAdd:
      return BinaryOp::kAdd;
    case Tok::kSub:
      return BinaryOp::kSub;
    case Tok::kMul:
      return BinaryOp::kMul;
    case Tok::kDiv:
      return BinaryOp::kDiv;
    case Tok::kMod:
      return BinaryOp::kMod;
    case Tok::kPow:
      return BinaryOp::kPow;
    case Tok::kAtan2:
      return BinaryOp::kAtan2;
    case Tok::kEqlc:
      return BinaryOp::kEql;
    case Tok::kNeq:
      return BinaryOp::kNeq;
    case Tok::kGtr:
      return BinaryOp::kGtr;
    case Tok::kLss:
      return BinaryOp::kLss;
    case Tok::kGte:
      return BinaryOp::kGte;
    case Tok::kLte:
      return BinaryOp::kLte;
    case Tok::kLand:
      return BinaryOp::kAnd;
    case Tok::kLor:
      return BinaryOp::kOr;
    default:
      return BinaryOp::kUnless;
  }
}

AggregateOp ToAggregateOp(Tok t) {
  switch (t) {
    case Tok::kAvg:
      return AggregateOp::kAvg;
    case Tok::kBottomk:
      return AggregateOp::kBottomk;
    case Tok::kCount:
      return AggregateOp::kCount;
    case Tok::kCountValues:
      return AggregateOp::kCountValues;
    case Tok::kGroup:
      return AggregateOp::kGroup;
    case Tok::kMax:
      return AggregateOp::kMax;
    case Tok::kMin:
      return AggregateOp::kMin;
    case Tok::kQuantile:
      return AggregateOp::kQuantile;
    case Tok::kStddev:
      return AggregateOp::kStddev;
    case Tok::kStdvar:
      return AggregateOp::kStdvar;
    case Tok::kTopk:
      return AggregateOp::kTopk;
    default:
      return AggregateOp::kSum;
  }
}

bool AggregateHasParam(AggregateOp op) {
  return op == AggregateOp::kTopk || op == AggregateOp::kBottomk || op == AggregateOp::kQuantile ||
         op == AggregateOp::kCountValues;
}

// Tokens that can name a metric (Prometheus's metric_identifier).
bool IsMetricIdentifier(Tok t) {
  switch (t) {
    case Tok::kIdentifier:
    case Tok::kMetricIdentifier:
    case Tok::kBy:
    case Tok::kLand:
    case Tok::kLor:
    case Tok::kLunless:
    case Tok::kOffset:
    case Tok::kWithout:
    case Tok::kStart:
    case Tok::kEnd:
      return true;
    default:
      return internal::IsAggregatorTok(t);
  }
}

// Tokens that can be a label name in grouping lists (Prometheus's maybe_label).
bool IsMaybeLabel(Tok t) {
  switch (t) {
    case Tok::kIdentifier:
    case Tok::kMetricIdentifier:
    case Tok::kBool:
    case Tok::kBy:
    case Tok::kGroupLeft:
    case Tok::kGroupRight:
    case Tok::kIgnoring:
    case Tok::kLand:
    case Tok::kLor:
    case Tok::kLunless:
    case Tok::kOffset:
    case Tok::kOn:
    case Tok::kStart:
    case Tok::kEnd:
    case Tok::kAtan2:
      return true;
    default:
      return internal::IsAggregatorTok(t);
  }
}

template <typename T>
ExprPtr MakeExpr(T node, int start, int end) {
  auto e = std::make_unique<Expr>();
  e->node = std::move(node);
  e->pos = PositionRange{start, end};
  return e;
}

class Parser {
 public:
  explicit Parser(std::string_view input) : input_(input), lex_(input) {}

  absl::StatusOr<ExprPtr> ParseQuery() {
    if (Peek().type == Tok::kEOF) {
      AddError(0, "no expression found in input");
      return Result(nullptr);
    }
    ExprPtr e = ParseExpr(0);
    if (!fatal_ && Peek().type != Tok::kEOF) Unexpected("", "");
    if (errors_.empty() && e != nullptr) Check(*e);
    return Result(std::move(e));
  }

  absl::StatusOr<std::vector<LabelMatcher>> ParseSelectorOnly() {
    ExprPtr e;
    const Token& t = Peek();
    if (IsMetricIdentifier(t.type) || t.type == Tok::kLeftBrace) {
      e = ParseVectorSelector();
      if (!fatal_ && Peek().type != Tok::kEOF) Unexpected("", "");
    } else {
      Unexpected("", "");
    }
    if (!errors_.empty()) return absl::InvalidArgumentError(FirstError());
    return std::move(e->As<VectorSelector>()->matchers);
  }

 private:
  struct Error {
    int pos;
    std::string msg;
  };

  absl::StatusOr<ExprPtr> Result(ExprPtr e) {
    if (!errors_.empty()) return absl::InvalidArgumentError(FirstError());
    return e;
  }

  std::string FirstError() const {
    return absl::StrCat(PosString(input_, errors_[0].pos), ": parse error: ", errors_[0].msg);
  }

  // --- tokens ---

  const Token& Peek(size_t k = 0) {
    while (buf_.size() <= k) {
      Token t = lex_.Next();
      if (t.type == Tok::kError) {
        if (!lexer_failed_) {
          lexer_failed_ = true;
          AddError(t.pos, t.error);
          fatal_ = true;
        }
      }
      buf_.push_back(std::move(t));
    }
    return buf_[k];
  }

  Token Consume() {
    Peek();
    Token t = std::move(buf_.front());
    buf_.pop_front();
    prev_end_ = t.end();
    return t;
  }

  // --- errors ---

  void AddError(int pos, std::string msg) { errors_.push_back(Error{pos, std::move(msg)}); }

  // Prometheus's parser.unexpected: complains about the lookahead token. Always fatal.
  void Unexpected(std::string_view context, std::string_view expected) {
    fatal_ = true;
    const Token& t = Peek();
    if (t.type == Tok::kError) return;  // the lexer already reported it
    std::string ctx(context);
    if (ctx.empty() && aggregation_depth_ > 0) ctx = "aggregation";
    std::string msg = "unexpected " + internal::DescribeToken(t);
    if (!ctx.empty()) absl::StrAppend(&msg, " in ", ctx);
    if (!expected.empty()) absl::StrAppend(&msg, ", expected ", std::string(expected));
    AddError(t.pos, std::move(msg));
  }

  // --- grammar ---

  // Binary expressions by precedence climbing; `^` is right-associative. Every nested
  // expression (parentheses, arguments, unary operands, right operands) comes through here, so
  // the depth check bounds the recursion: a query nested deeper than kMaxNesting is refused
  // instead of overflowing the stack (Go's growable stacks spare Prometheus this limit).
  ExprPtr ParseExpr(int min_prec) {
    if (depth_ >= kMaxNesting) {
      AddError(Peek().pos, absl::StrCat("expression nested more than ", kMaxNesting,
                                        " levels deep"));
      fatal_ = true;
      return nullptr;
    }
    ++depth_;
    ExprPtr e = ParseBinary(min_prec);
    --depth_;
    return e;
  }

  ExprPtr ParseBinary(int min_prec) {
    ExprPtr lhs = ParseUnary();
    while (!fatal_) {
      Tok op_tok = Peek().type;
      int prec = BinaryPrecedence(op_tok);
      if (prec == 0 || prec < min_prec) break;
      Token op = Consume();
      BinaryExpr bin;
      bin.op = ToBinaryOp(op_tok);
      VectorMatching vm;
      if (Peek().type == Tok::kBool) {
        Consume();
        bin.return_bool = true;
      }
      if (Peek().type == Tok::kOn || Peek().type == Tok::kIgnoring) {
        vm.on = Consume().type == Tok::kOn;
        vm.has_matching = true;
        if (!ParseGroupingLabels(&vm.matching_labels)) return nullptr;
        if (Peek().type == Tok::kGroupLeft || Peek().type == Tok::kGroupRight) {
          vm.card = Consume().type == Tok::kGroupLeft ? VectorMatching::Card::kManyToOne
                                                      : VectorMatching::Card::kOneToMany;
          if (Peek().type == Tok::kLeftParen && !ParseGroupingLabels(&vm.include)) {
            return nullptr;
          }
        }
      }
      bin.matching = std::move(vm);
      ExprPtr rhs = ParseExpr(prec == kPowPrecedence ? prec : prec + 1);
      if (fatal_) return nullptr;
      int start = lhs->pos.start;
      int end = rhs->pos.end;
      bin.lhs = std::move(lhs);
      bin.rhs = std::move(rhs);
      lhs = MakeExpr(std::move(bin), start, end);
      op_pos_[lhs.get()] = op.pos;
    }
    if (fatal_) return nullptr;
    return lhs;
  }

  // Unary +/- binds like `*`: its operand takes only `^` and postfix modifiers.
  ExprPtr ParseUnary() {
    Tok t = Peek().type;
    if (t == Tok::kAdd || t == Tok::kSub) {
      Token op = Consume();
      ExprPtr operand = ParseExpr(kPowPrecedence);
      if (fatal_) return nullptr;
      if (auto* num = operand->As<NumberLiteral>()) {
        if (op.type == Tok::kSub) num->value = -num->value;
        operand->pos.start = op.pos;
        return operand;
      }
      int end = operand->pos.end;
      UnaryExpr u;
      u.negate = op.type == Tok::kSub;
      u.expr = std::move(operand);
      return MakeExpr(std::move(u), op.pos, end);
    }
    ExprPtr e = ParsePrimary();
    if (fatal_) return nullptr;
    return ParsePostfix(std::move(e));
  }

  ExprPtr ParsePrimary() {
    const Token& t = Peek();
    switch (t.type) {
      case Tok::kNumber: {
        Token n = Consume();
        return MakeExpr(NumberLiteral{ParseNumber(n)}, n.pos, n.end());
      }
      case Tok::kString: {
        Token s = Consume();
        return MakeExpr(StringLiteral{internal::UnquoteString(s.text)}, s.pos, s.end());
      }
      case Tok::kLeftParen: {
        Token open = Consume();
        ExprPtr inner = ParseExpr(0);
        if (fatal_) return nullptr;
        if (Peek().type != Tok::kRightParen) {
          Unexpected("", "");
          return nullptr;
        }
        Consume();
        return MakeExpr(ParenExpr{std::move(inner)}, open.pos, prev_end_);
      }
      case Tok::kLeftBrace:
        return ParseVectorSelector();
      case Tok::kIdentifier:
        if (Peek(1).type == Tok::kLeftParen) return ParseCall();
        return ParseVectorSelector();
      default:
        break;
    }
    if (internal::IsAggregatorTok(t.type)) {
      Tok next = Peek(1).type;
      if (next == Tok::kLeftParen || next == Tok::kBy || next == Tok::kWithout) {
        return ParseAggregate();
      }
    }
    if (IsMetricIdentifier(t.type)) return ParseVectorSelector();
    Unexpected("", "");
    return nullptr;
  }

  double ParseNumber(const Token& t) {
    int64_t i = 0;
    if (ParseGoInt(t.text, &i)) return static_cast<double>(i);
    double f = 0;
    if (ParseGoFloat(t.text, &f)) return f;
    AddError(t.pos, absl::StrCat("error parsing number: strconv.ParseFloat: parsing ",
                                 internal::GoQuote(t.text), ": invalid syntax"));
    return 0;
  }

  // A duration in the query text (range, subquery range and step, offset): as Prometheus 2.42,
  // zero is refused wherever it stands ("foo[0s]", "foo[1m:0s]", "foo offset 0s").
  int64_t ParseDurationToken(const Token& t) {
    absl::StatusOr<int64_t> d = ParseDuration(t.text);
    if (!d.ok()) {
      AddError(t.pos, std::string(d.status().message()));
      return 0;
    }
    if (*d == 0) {
      AddError(t.pos, "duration must be greater than 0");
      return 0;
    }
    return *d;
  }

  // metric_identifier [label_matchers] | label_matchers
  ExprPtr ParseVectorSelector() {
    VectorSelector vs;
    int start = Peek().pos;
    if (Peek().type != Tok::kLeftBrace) {
      Token name = Consume();
      vs.name = std::string(name.text);
    }
    std::vector<LabelMatcher> matchers;
    if (Peek().type == Tok::kLeftBrace) {
      if (!ParseLabelMatchers(&matchers)) return nullptr;
    }
    if (!vs.name.empty()) {
      absl::StatusOr<LabelMatcher> m = LabelMatcher::Create(MatchType::kEqual, "__name__", vs.name);
      if (m.ok()) vs.matchers.push_back(*std::move(m));
    }
    for (LabelMatcher& m : matchers) vs.matchers.push_back(std::move(m));
    return MakeExpr(std::move(vs), start, prev_end_);
  }

  bool ParseLabelMatchers(std::vector<LabelMatcher>* out) {
    Consume();  // {
    if (Peek().type == Tok::kRightBrace) {
      Consume();
      return true;
    }
    for (;;) {
      if (Peek().type != Tok::kIdentifier) {
        Unexpected("label matching", "identifier or \"}\"");
        return false;
      }
      Token name = Consume();
      MatchType type;
      switch (Peek().type) {
        case Tok::kEql:
          type = MatchType::kEqual;
          break;
        case Tok::kNeq:
          type = MatchType::kNotEqual;
          break;
        case Tok::kEqlRegex:
          type = MatchType::kRegexMatch;
          break;
        case Tok::kNeqRegex:
          type = MatchType::kRegexNoMatch;
          break;
        default:
          Unexpected("label matching", "label matching operator");
          return false;
      }
      Consume();
      if (Peek().type != Tok::kString) {
        Unexpected("label matching", "string");
        return false;
      }
      Token value = Consume();
      absl::StatusOr<LabelMatcher> m =
          LabelMatcher::Create(type, std::string(name.text), internal::UnquoteString(value.text));
      if (m.ok()) {
        out->push_back(*std::move(m));
      } else {
        AddError(name.pos, std::string(m.status().message()));
      }
      switch (AfterListItem(Tok::kRightBrace, "label matching", "\",\" or \"}\"")) {
        case ListStep::kMore: continue;
        case ListStep::kDone: return true;
        case ListStep::kError: return false;
      }
    }
  }

  // After an item of a comma-separated list closed by `close` (a trailing comma allowed):
  // consumes `,` or `close`. kMore: another item follows; kDone: the list ended; kError: reported
  // as unexpected in `context`.
  enum class ListStep { kMore, kDone, kError };
  ListStep AfterListItem(Tok close, std::string_view context, std::string_view expected) {
    if (Peek().type == Tok::kComma) {
      Consume();
      if (Peek().type != close) return ListStep::kMore;
      Consume();
      return ListStep::kDone;
    }
    if (Peek().type == close) {
      Consume();
      return ListStep::kDone;
    }
    Unexpected(context, expected);
    return ListStep::kError;
  }

  // `(` label, ... `)` after by/without/on/ignoring/group_left/group_right.
  bool ParseGroupingLabels(std::vector<std::string>* out) {
    if (Peek().type != Tok::kLeftParen) {
      Unexpected("grouping opts", "\"(\"");
      return false;
    }
    Consume();
    if (Peek().type == Tok::kRightParen) {
      Consume();
      return true;
    }
    for (;;) {
      if (!IsMaybeLabel(Peek().type)) {
        Unexpected("grouping opts", "label");
        return false;
      }
      Token label = Consume();
      if (!IsLabelName(label.text)) {
        Unexpected("grouping opts", "label");
        return false;
      }
      out->push_back(std::string(label.text));
      switch (AfterListItem(Tok::kRightParen, "grouping opts", "\",\" or \")\"")) {
        case ListStep::kMore: continue;
        case ListStep::kDone: return true;
        case ListStep::kError: return false;
      }
    }
  }

  // `(` [expr {, expr}] `)`; the caller has checked the `(`.
  bool ParseCallArgs(std::vector<ExprPtr>* args) {
    Consume();  // (
    if (Peek().type == Tok::kRightParen) {
      Consume();
      return true;
    }
    for (;;) {
      ExprPtr arg = ParseExpr(0);
      if (fatal_) return false;
      args->push_back(std::move(arg));
      if (Peek().type == Tok::kComma) {
        Token comma = Consume();
        if (Peek().type == Tok::kRightParen) {
          AddError(comma.pos, "trailing commas not allowed in function call args");
          Consume();
          return true;
        }
        continue;
      }
      if (Peek().type == Tok::kRightParen) {
        Consume();
        return true;
      }
      Unexpected("", "");
      return false;
    }
  }

  ExprPtr ParseCall() {
    Token name = Consume();
    Call call;
    call.func = std::string(name.text);
    if (!ParseCallArgs(&call.args)) return nullptr;
    if (FindFunction(call.func) == nullptr) {
      AddError(name.pos, absl::StrCat("unknown function with name ", internal::GoQuote(name.text)));
    }
    return MakeExpr(std::move(call), name.pos, prev_end_);
  }

  ExprPtr ParseAggregate() {
    Token op = Consume();
    AggregateExpr agg;
    agg.op = ToAggregateOp(op.type);
    ++aggregation_depth_;
    auto parse_modifier = [&]() {
      agg.without = Consume().type == Tok::kWithout;
      agg.has_grouping = true;
      return ParseGroupingLabels(&agg.grouping);
    };
    std::vector<ExprPtr> args;
    if (Peek().type == Tok::kBy || Peek().type == Tok::kWithout) {
      if (!parse_modifier()) return nullptr;
      if (Peek().type != Tok::kLeftParen) {
        Unexpected("aggregation", "");
        return nullptr;
      }
      if (!ParseCallArgs(&args)) return nullptr;
      --aggregation_depth_;
    } else {
      if (!ParseCallArgs(&args)) return nullptr;
      --aggregation_depth_;
      if (Peek().type == Tok::kBy || Peek().type == Tok::kWithout) {
        if (!parse_modifier()) return nullptr;
      }
    }
    int start = op.pos;
    int end = prev_end_;
    size_t want = AggregateHasParam(agg.op) ? 2 : 1;
    if (args.empty()) {
      AddError(start, "no arguments for aggregate expression provided");
    } else if (args.size() != want) {
      AddError(start, absl::StrCat("wrong number of arguments for aggregate expression provided, "
                                   "expected ",
                                   want, ", got ", args.size()));
    } else {
      if (want == 2) agg.param = std::move(args[0]);
      agg.expr = std::move(args[want - 1]);
    }
    return MakeExpr(std::move(agg), start, end);
  }

  // Range/subquery brackets, `offset` and `@`, which bind tighter than any operator.
  ExprPtr ParsePostfix(ExprPtr e) {
    // Each `[...]` wraps the tree once more (`x[1m:][1m:]...`): it counts towards the nesting.
    int wraps = 0;
    while (!fatal_) {
      switch (Peek().type) {
        case Tok::kLeftBracket:
          if (depth_ + ++wraps > kMaxNesting) {
            AddError(Peek().pos, absl::StrCat("expression nested more than ", kMaxNesting,
                                              " levels deep"));
            fatal_ = true;
            return nullptr;
          }
          e = ParseBrackets(std::move(e));
          break;
        case Tok::kOffset:
          e = ParseOffset(std::move(e));
          break;
        case Tok::kAt:
          e = ParseAt(std::move(e));
          break;
        default:
          return e;
      }
    }
    return nullptr;
  }

  ExprPtr ParseBrackets(ExprPtr e) {
    Token open = Consume();
    if (Peek().type != Tok::kDuration) {
      Unexpected("subquery selector", "duration");
      return nullptr;
    }
    int64_t range = ParseDurationToken(Consume());
    if (Peek().type == Tok::kRightBracket) {
      Consume();
      const auto* vs = e->As<VectorSelector>();
      if (vs == nullptr) {
        AddError(open.pos, "ranges only allowed for vector selectors");
      } else if (vs->offset_ms != 0) {
        AddError(open.pos, "no offset modifiers allowed before range");
      } else if (vs->at.kind == AtModifier::Kind::kTimestamp) {
        AddError(open.pos, "no @ modifiers allowed before range");
      }
      int start = e->pos.start;
      MatrixSelector ms;
      ms.selector = std::move(e);
      ms.range_ms = range;
      return MakeExpr(std::move(ms), start, prev_end_);
    }
    if (Peek().type != Tok::kColon) {
      Unexpected("subquery or range", "\":\" or \"]\"");
      return nullptr;
    }
    Consume();
    int64_t step = 0;
    if (Peek().type == Tok::kDuration) {
      step = ParseDurationToken(Consume());
      if (Peek().type != Tok::kRightBracket) {
        Unexpected("subquery selector", "\"]\"");
        return nullptr;
      }
    } else if (Peek().type != Tok::kRightBracket) {
      Unexpected("subquery selector", "duration or \"]\"");
      return nullptr;
    }
    Consume();
    int start = e->pos.start;
    SubqueryExpr sq;
    sq.expr = std::move(e);
    sq.range_ms = range;
    sq.step_ms = step;
    return MakeExpr(std::move(sq), start, prev_end_);
  }

  // Where `offset` and `@` store their values for the expression they follow: its vector
  // selector (a matrix selector's inner one) or subquery. Null after reporting why not.
  struct ModifierSlots {
    int64_t* offset_ms;
    AtModifier* at;
  };
  std::optional<ModifierSlots> ModifierTarget(Expr& e, std::string_view modifier) {
    if (auto* vs = e.As<VectorSelector>()) return ModifierSlots{&vs->offset_ms, &vs->at};
    if (auto* sq = e.As<SubqueryExpr>()) return ModifierSlots{&sq->offset_ms, &sq->at};
    if (auto* ms = e.As<MatrixSelector>()) {
      if (auto* inner = ms->selector->As<VectorSelector>()) {
        return ModifierSlots{&inner->offset_ms, &inner->at};
      }
      AddError(e.pos.start, "ranges only allowed for vector selectors");
      return std::nullopt;
    }
    AddError(e.pos.start, absl::StrCat(std::string(modifier),
                                       " modifier must be preceded by an instant vector selector "
                                       "or range vector selector or a subquery"));
    return std::nullopt;
  }

  ExprPtr ParseOffset(ExprPtr e) {
    Consume();  // offset
    bool negative = false;
    if (Peek().type == Tok::kSub) {
      Consume();
      negative = true;
    }
    if (Peek().type != Tok::kDuration) {
      Unexpected("offset", "duration");
      return nullptr;
    }
    int64_t d = ParseDurationToken(Consume());
    if (negative) d = -d;
    std::optional<ModifierSlots> slots = ModifierTarget(*e, "offset");
    if (!slots) return e;
    int64_t* target = slots->offset_ms;
    if (*target != 0) {
      AddError(e->pos.start, "offset may not be set multiple times");
    } else {
      *target = d;
    }
    e->pos.end = prev_end_;
    return e;
  }

  ExprPtr ParseAt(ExprPtr e) {
    Consume();  // @
    AtModifier at;
    const Token& t = Peek();
    double ts = 0;
    if (t.type == Tok::kNumber) {
      ts = ParseNumber(Consume());
      at.kind = AtModifier::Kind::kTimestamp;
    } else if ((t.type == Tok::kAdd || t.type == Tok::kSub) && Peek(1).type == Tok::kNumber) {
      bool neg = Consume().type == Tok::kSub;
      ts = ParseNumber(Consume());
      if (neg) ts = -ts;
      at.kind = AtModifier::Kind::kTimestamp;
    } else if ((t.type == Tok::kStart || t.type == Tok::kEnd) && Peek(1).type == Tok::kLeftParen &&
               Peek(2).type == Tok::kRightParen) {
      at.kind = Consume().type == Tok::kStart ? AtModifier::Kind::kStart : AtModifier::Kind::kEnd;
      Consume();
      Consume();
    } else {
      // As yacc's error recovery: the complaint is about the first token that does not fit.
      Tok first = t.type;
      if (first == Tok::kStart || first == Tok::kEnd) {
        Consume();
        if (Peek().type == Tok::kLeftParen) Consume();
      } else if (first == Tok::kAdd || first == Tok::kSub) {
        Consume();
      }
      Unexpected("@", "timestamp");
      return nullptr;
    }
    if (at.kind == AtModifier::Kind::kTimestamp) {
      if (std::isnan(ts) || std::isinf(ts) ||
          ts >= static_cast<double>(std::numeric_limits<int64_t>::max()) ||
          ts <= static_cast<double>(std::numeric_limits<int64_t>::min())) {
        AddError(e->pos.start,
                 absl::StrCat("timestamp out of bounds for @ modifier: ", FormatGoF(ts)));
      }
      double ms = std::round(ts * 1000.0);
      if (std::isfinite(ms) && std::fabs(ms) < 9.2e18) {
        at.timestamp_ms = static_cast<int64_t>(ms);
      }
    }
    std::optional<ModifierSlots> slots = ModifierTarget(*e, "@");
    if (!slots) return e;
    AtModifier* target = slots->at;
    if (target->kind != AtModifier::Kind::kNone) {
      AddError(e->pos.start, "@ <timestamp> may not be set multiple times");
      return e;
    }
    *target = at;
    e->pos.end = prev_end_;
    return e;
  }

  // --- type checks (Prometheus's checkAST); the first error wins ---

  bool Failed() const { return !errors_.empty(); }

  void CheckFail(int pos, std::string msg) {
    if (!Failed()) AddError(pos, std::move(msg));
  }

  void ExpectType(Expr& e, ValueType want, std::string_view context) {
    ValueType t = Check(e);
    if (t != want) {
      CheckFail(e.pos.start, absl::StrCat("expected type ", DocumentedType(want), " in ",
                                          std::string(context), ", got ", DocumentedType(t)));
    }
  }

  ValueType Check(Expr& e) {
    if (Failed()) return ValueType::kNone;
    ValueType type = TypeOf(e);
    if (auto* agg = e.As<AggregateExpr>()) {
      ExpectType(*agg->expr, ValueType::kVector, "aggregation expression");
      if (agg->op == AggregateOp::kTopk || agg->op == AggregateOp::kBottomk ||
          agg->op == AggregateOp::kQuantile) {
        ExpectType(*agg->param, ValueType::kScalar, "aggregation parameter");
      }
      if (agg->op == AggregateOp::kCountValues) {
        ExpectType(*agg->param, ValueType::kString, "aggregation parameter");
      }
    } else if (auto* bin = e.As<BinaryExpr>()) {
      CheckBinary(e, *bin);
    } else if (auto* call = e.As<Call>()) {
      CheckCall(e, *call);
    } else if (auto* paren = e.As<ParenExpr>()) {
      Check(*paren->expr);
    } else if (auto* unary = e.As<UnaryExpr>()) {
      ValueType t = Check(*unary->expr);
      if (t != ValueType::kScalar && t != ValueType::kVector) {
        CheckFail(e.pos.start,
                  absl::StrCat("unary expression only allowed on expressions of type scalar or "
                               "instant vector, got ",
                               internal::GoQuote(DocumentedType(t))));
      }
    } else if (auto* sq = e.As<SubqueryExpr>()) {
      ValueType t = Check(*sq->expr);
      if (t != ValueType::kVector) {
        CheckFail(e.pos.start, absl::StrCat("subquery is only allowed on instant vector, got ",
                                            std::string(ValueTypeName(t)), " instead"));
      }
    } else if (auto* ms = e.As<MatrixSelector>()) {
      Check(*ms->selector);
    } else if (auto* vs = e.As<VectorSelector>()) {
      CheckVectorSelector(e, *vs);
    }
    return type;
  }

  void CheckVectorSelector(const Expr& e, const VectorSelector& vs) {
    if (!vs.name.empty()) {
      // The first matcher is the one for the name written before the braces.
      for (size_t i = 1; i < vs.matchers.size(); ++i) {
        if (vs.matchers[i].name() == "__name__") {
          CheckFail(e.pos.start,
                    absl::StrCat("metric name must not be set twice: ", internal::GoQuote(vs.name),
                                 " or ", internal::GoQuote(vs.matchers[i].value())));
        }
      }
      return;
    }
    for (const LabelMatcher& m : vs.matchers) {
      if (!m.MatchesEmpty()) return;
    }
    CheckFail(e.pos.start, "vector selector must contain at least one non-empty matcher");
  }

  void CheckCall(const Expr& e, Call& call) {
    const FunctionInfo* f = FindFunction(call.func);
    if (f == nullptr) {
      CheckFail(e.pos.start,
                absl::StrCat("unknown function with name ", internal::GoQuote(call.func)));
      return;
    }
    int nargs = static_cast<int>(f->arg_types.size());
    int got = static_cast<int>(call.args.size());
    std::string quoted = internal::GoQuote(f->name);
    if (f->variadic == 0) {
      if (nargs != got) {
        CheckFail(e.pos.start, absl::StrCat("expected ", nargs, " argument(s) in call to ", quoted,
                                            ", got ", got));
      }
    } else {
      int na = nargs - 1;
      if (na > got) {
        CheckFail(e.pos.start, absl::StrCat("expected at least ", na, " argument(s) in call to ",
                                            quoted, ", got ", got));
      } else if (f->variadic > 0 && na + f->variadic < got) {
        CheckFail(e.pos.start, absl::StrCat("expected at most ", na + f->variadic,
                                            " argument(s) in call to ", quoted, ", got ", got));
      }
    }
    for (int i = 0; i < got; ++i) {
      int k = i;
      if (k >= nargs) {
        if (f->variadic == 0) break;
        k = nargs - 1;
      }
      ValueType t = Check(*call.args[i]);
      if (t != f->arg_types[k]) {
        CheckFail(call.args[i]->pos.start,
                  absl::StrCat("expected type ", DocumentedType(f->arg_types[k]),
                               " in call to function ", quoted, ", got ", DocumentedType(t)));
      }
    }
  }

  void CheckBinary(const Expr& e, BinaryExpr& bin) {
    ValueType lt = Check(*bin.lhs);
    ValueType rt = Check(*bin.rhs);
    int op_pos = op_pos_.count(&e) ? op_pos_[&e] : e.pos.start;
    std::string op_name(BinaryOpName(bin.op));
    if (bin.return_bool && !IsComparison(bin.op)) {
      CheckFail(op_pos, "bool modifier can only be used on comparison operators");
    }
    if (IsComparison(bin.op) && !bin.return_bool && lt == ValueType::kScalar &&
        rt == ValueType::kScalar) {
      CheckFail(op_pos, "comparisons between scalars must use BOOL modifier");
    }
    VectorMatching& vm = *bin.matching;
    if (IsSetOperator(bin.op) && vm.card == VectorMatching::Card::kOneToOne) {
      vm.card = VectorMatching::Card::kManyToMany;
    }
    if (vm.on) {
      for (const std::string& l1 : vm.matching_labels) {
        for (const std::string& l2 : vm.include) {
          if (l1 == l2) {
            CheckFail(op_pos, absl::StrCat("label ", internal::GoQuote(l1),
                                           " must not occur in ON and GROUP clause at once"));
          }
        }
      }
    }
    if (lt != ValueType::kScalar && lt != ValueType::kVector) {
      CheckFail(bin.lhs->pos.start,
                "binary expression must contain only scalar and instant vector types");
    }
    if (rt != ValueType::kScalar && rt != ValueType::kVector) {
      CheckFail(bin.rhs->pos.start,
                "binary expression must contain only scalar and instant vector types");
    }
    if (lt != ValueType::kVector || rt != ValueType::kVector) {
      if (!vm.matching_labels.empty()) {
        CheckFail(e.pos.start, "vector matching only allowed between instant vectors");
      }
      bin.matching.reset();
    } else if (IsSetOperator(bin.op)) {
      if (vm.card == VectorMatching::Card::kOneToMany ||
          vm.card == VectorMatching::Card::kManyToOne) {
        CheckFail(e.pos.start, absl::StrCat("no grouping allowed for ", internal::GoQuote(op_name),
                                            " operation"));
      }
      if (vm.card != VectorMatching::Card::kManyToMany) {
        CheckFail(e.pos.start, "set operations must always be many-to-many");
      }
    }
    if ((lt == ValueType::kScalar || rt == ValueType::kScalar) && IsSetOperator(bin.op)) {
      CheckFail(e.pos.start, absl::StrCat("set operator ", internal::GoQuote(op_name),
                                          " not allowed in binary scalar expression"));
    }
  }

  std::string_view input_;
  Lexer lex_;
  std::deque<Token> buf_;
  std::vector<Error> errors_;
  bool fatal_ = false;
  static constexpr int kMaxNesting = 256;
  int depth_ = 0;  // ParseExpr calls under way
  bool lexer_failed_ = false;
  int prev_end_ = 0;
  int aggregation_depth_ = 0;
  std::unordered_map<const Expr*, int> op_pos_;
};

}  // namespace

absl::StatusOr<ExprPtr> Parse(std::string_view query) {
  Parser p(query);
  return p.ParseQuery();
}

absl::StatusOr<std::vector<LabelMatcher>> ParseSelector(std::string_view selector) {
  Parser p(selector);
  return p.ParseSelectorOnly();
}

absl::StatusOr<int64_t> ParseDuration(std::string_view text) {
  if (text == "0") return 0;
  if (text.empty()) return absl::InvalidArgumentError("empty duration string");
  auto invalid = [&]() {
    return absl::InvalidArgumentError(
        absl::StrCat("not a valid duration string: ", internal::GoQuote(text)));
  };
  // ^((\d+)y)?((\d+)w)?((\d+)d)?((\d+)h)?((\d+)m)?((\d+)s)?((\d+)ms)?$
  struct Unit {
    std::string_view suffix;
    int64_t ms;
  };
  static constexpr Unit kUnits[] = {{"y", kMsPerYear}, {"w", kMsPerWeek},   {"d", kMsPerDay},
                                    {"h", kMsPerHour}, {"m", kMsPerMinute}, {"s", kMsPerSecond},
                                    {"ms", 1}};
  // Go's time.Duration counts nanoseconds: the total must fit in int64 nanoseconds.
  constexpr int64_t kMaxMs = std::numeric_limits<int64_t>::max() / 1000000;
  size_t i = 0;
  size_t next_unit = 0;
  int64_t total = 0;
  bool out_of_range = false;
  while (i < text.size()) {
    size_t digits_start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
    if (i == digits_start) return invalid();
    std::string_view digits = text.substr(digits_start, i - digits_start);
    size_t unit_start = i;
    while (i < text.size() && !(text[i] >= '0' && text[i] <= '9')) ++i;
    std::string_view suffix = text.substr(unit_start, i - unit_start);
    size_t u = next_unit;
    while (u < std::size(kUnits) && kUnits[u].suffix != suffix) ++u;
    if (u == std::size(kUnits)) return invalid();
    next_unit = u + 1;
    int64_t n = 0;
    for (char c : digits) {
      if (n > (std::numeric_limits<int64_t>::max() - 9) / 10) {
        out_of_range = true;
        break;
      }
      n = n * 10 + (c - '0');
    }
    if (out_of_range || n > kMaxMs / kUnits[u].ms) {
      out_of_range = true;
      continue;
    }
    total += n * kUnits[u].ms;
    if (total > kMaxMs) out_of_range = true;
  }
  if (out_of_range) return absl::InvalidArgumentError("duration out of range");
  return total;
}

std::string FormatDuration(int64_t ms) {
  if (ms == 0) return "0s";
  std::string out;
  uint64_t rest;
  if (ms < 0) {
    out = "-";
    rest = static_cast<uint64_t>(-(ms + 1)) + 1;
  } else {
    rest = static_cast<uint64_t>(ms);
  }
  auto unit = [&](std::string_view name, uint64_t mult, bool exact) {
    if (exact && rest % mult != 0) return;
    uint64_t v = rest / mult;
    if (v > 0) {
      absl::StrAppend(&out, v, std::string(name));
      rest -= v * mult;
    }
  };
  // Years and weeks only when exact, as Prometheus: 90d rather than 12w6d.
  unit("y", kMsPerYear, true);
  unit("w", kMsPerWeek, true);
  unit("d", kMsPerDay, false);
  unit("h", kMsPerHour, false);
  unit("m", kMsPerMinute, false);
  unit("s", kMsPerSecond, false);
  unit("ms", 1, false);
  return out;
}

}  // namespace tidemark::promql
