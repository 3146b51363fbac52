// The PromQL lexer: turns query text into tokens, one at a time, with the same states and
// error messages as Prometheus's lexer (promql/parser/lex.go): keywords are case-insensitive,
// everything inside braces is an identifier, `[` starts a duration. Comments are skipped.
// Internal to query/; used by the parser. Not thread-safe (one per parse).
#ifndef TIDEMARK_QUERY_LEXER_H_
#define TIDEMARK_QUERY_LEXER_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace tidemark::promql::internal {

enum class Tok : uint8_t {
  kEOF,
  kError,
  kIdentifier,
  kMetricIdentifier,
  kNumber,
  kString,
  kDuration,
  kLeftParen,
  kRightParen,
  kLeftBrace,
  kRightBrace,
  kLeftBracket,
  kRightBracket,
  kComma,
  kEql,
  kColon,
  // Operators.
  kAdd,
  kSub,
  kMul,
  kDiv,
  kMod,
  kPow,
  kEqlc,
  kNeq,
  kLss,
  kLte,
  kGtr,
  kGte,
  kEqlRegex,
  kNeqRegex,
  kAt,
  kAtan2,
  kLand,
  kLor,
  kLunless,
  // Aggregators.
  kAvg,
  kBottomk,
  kCount,
  kCountValues,
  kGroup,
  kMax,
  kMin,
  kQuantile,
  kStddev,
  kStdvar,
  kSum,
  kTopk,
  // Keywords.
  kBool,
  kBy,
  kGroupLeft,
  kGroupRight,
  kIgnoring,
  kOffset,
  kOn,
  kWithout,
  // Preprocessors of `@`.
  kStart,
  kEnd,
};

bool IsAggregatorTok(Tok t);
bool IsKeywordTok(Tok t);
bool IsOperatorTok(Tok t);

struct Token {
  Tok type = Tok::kEOF;
  int pos = 0;            // byte offset of the token's first character
  std::string_view text;  // the token's text; for kError the message lives in `error`
  std::string error;
  int end() const { return pos + static_cast<int>(text.size()); }
};

// Prometheus's description of a token in "unexpected ..." messages: `<op:+>`, `"("`,
// `identifier "foo"`, `end of input`, `<aggr:sum>`, `<by>`.
std::string DescribeToken(const Token& tok);

// Go's %q of a string (strconv.Quote) and of a rune (strconv.QuoteRune).
std::string GoQuote(std::string_view s);
std::string GoQuoteRune(char32_t r);

// The value of a string token (quotes included) the lexer accepted: escapes resolved for
// "..." and '...', verbatim for `...`.
std::string UnquoteString(std::string_view token_text);

class Lexer {
 public:
  explicit Lexer(std::string_view input) : input_(input) {}
  // The next token; kEOF forever at the end; kError (once) on bad input, then kEOF.
  Token Next();

 private:
  static constexpr char32_t kEof = 0xFFFFFFFF;
  char32_t NextRune();
  void Backup() { pos_ = last_pos_; }
  char32_t Peek();
  bool Accept(std::string_view valid);
  void AcceptRun(std::string_view valid);
  Token Emit(Tok type);
  Token Error(std::string msg);
  bool ScanNumber();
  bool AcceptRemainingDuration();
  Token LexInsideBraces();
  Token LexString(char32_t quote);
  Token LexRawString();
  bool LexEscape(char32_t quote, std::string* err);
  void SkipComment();

  std::string_view input_;
  int start_ = 0;
  int pos_ = 0;
  int last_pos_ = 0;
  int paren_depth_ = 0;
  bool brace_open_ = false;
  bool bracket_open_ = false;
  bool got_colon_ = false;
  bool after_left_bracket_ = false;
  bool done_ = false;
};

}  // namespace tidemark::promql::internal

#endif  // TIDEMARK_QUERY_LEXER_H_
