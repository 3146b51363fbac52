#include "query/lexer.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <utility>

namespace tidemark::promql::internal {
namespace {

bool IsSpace(char32_t r) { return r == ' ' || r == '\t' || r == '\n' || r == '\r'; }
bool IsAlpha(char32_t r) { return r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z'); }
bool IsDigit(char32_t r) { return r >= '0' && r <= '9'; }
bool IsAlphaNumeric(char32_t r) { return IsAlpha(r) || IsDigit(r); }

int DigitVal(char32_t ch) {
  if (ch >= '0' && ch <= '9') return static_cast<int>(ch - '0');
  if (ch >= 'a' && ch <= 'f') return static_cast<int>(ch - 'a' + 10);
  if (ch >= 'A' && ch <= 'F') return static_cast<int>(ch - 'A' + 10);
  return 16;
}

// Decodes one UTF-8 rune at s[i]; sets *width. Invalid bytes give 0xFFFD with width 1 and
// *invalid = true.
char32_t DecodeRune(std::string_view s, size_t i, int* width, bool* invalid) {
  *invalid = false;
  auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    *width = 1;
    return b0;
  }
  int n = 0;
  char32_t r = 0;
  char32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    n = 2;
    r = b0 & 0x1F;
    min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    n = 3;
    r = b0 & 0x0F;
    min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    n = 4;
    r = b0 & 0x07;
    min = 0x10000;
  } else {
    *width = 1;
    *invalid = true;
    return 0xFFFD;
  }
  if (i + n > s.size()) {
    *width = 1;
    *invalid = true;
    return 0xFFFD;
  }
  for (int k = 1; k < n; ++k) {
    auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) {
      *width = 1;
      *invalid = true;
      return 0xFFFD;
    }
    r = (r << 6) | (b & 0x3F);
  }
  if (r < min || r > 0x10FFFF || (r >= 0xD800 && r < 0xE000)) {
    *width = 1;
    *invalid = true;
    return 0xFFFD;
  }
  *width = n;
  return r;
}

void AppendUtf8(char32_t r, std::string* out) {
  if (r < 0x80) {
    out->push_back(static_cast<char>(r));
  } else if (r < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (r >> 6)));
    out->push_back(static_cast<char>(0x80 | (r & 0x3F)));
  } else if (r < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (r >> 12)));
    out->push_back(static_cast<char>(0x80 | ((r >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (r & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (r >> 18)));
    out->push_back(static_cast<char>(0x80 | ((r >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((r >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (r & 0x3F)));
  }
}

// An approximation of Go's unicode.IsPrint: ASCII graphic and space, and everything above
// U+009F except a few format characters.
bool IsPrintRune(char32_t r) {
  if (r < 0x80) return r >= 0x20 && r < 0x7F;
  if (r < 0xA0) return false;
  if (r == 0xAD || (r >= 0x2028 && r <= 0x202E) || (r >= 0x200B && r <= 0x200F) || r == 0xFEFF ||
      (r >= 0xFFF9 && r <= 0xFFFB) || r == 0xFFFD + 1) {
    return false;
  }
  return true;
}

std::string Hex(unsigned v, int digits) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%0*x", digits, v);
  return buf;
}

// Go's %#U: `U+0071 'q'` for printable runes, `U+000A` otherwise.
std::string FormatSharpU(char32_t r) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "U+%04X", static_cast<unsigned>(r));
  std::string out = buf;
  if (IsPrintRune(r)) {
    out += " '";
    AppendUtf8(r, &out);
    out += "'";
  }
  return out;
}

void AppendQuotedRune(char32_t r, char quote, std::string* out) {
  if (r == static_cast<char32_t>(quote) || r == '\\') {
    out->push_back('\\');
    out->push_back(static_cast<char>(r));
    return;
  }
  if (IsPrintRune(r)) {
    AppendUtf8(r, out);
    return;
  }
  switch (r) {
    case '\a':
      *out += "\\a";
      return;
    case '\b':
      *out += "\\b";
      return;
    case '\f':
      *out += "\\f";
      return;
    case '\n':
      *out += "\\n";
      return;
    case '\r':
      *out += "\\r";
      return;
    case '\t':
      *out += "\\t";
      return;
    case '\v':
      *out += "\\v";
      return;
    default:
      break;
  }
  if (r < ' ' || r == 0x7F) {
    *out += "\\x" + Hex(r, 2);
  } else if (r < 0x10000) {
    *out += "\\u" + Hex(r, 4);
  } else {
    *out += "\\U" + Hex(r, 8);
  }
}

struct Keyword {
  std::string_view word;
  Tok tok;
};

constexpr Keyword kKeywords[] = {
    {"and", Tok::kLand},
    {"or", Tok::kLor},
    {"unless", Tok::kLunless},
    {"atan2", Tok::kAtan2},
    {"sum", Tok::kSum},
    {"avg", Tok::kAvg},
    {"count", Tok::kCount},
    {"min", Tok::kMin},
    {"max", Tok::kMax},
    {"group", Tok::kGroup},
    {"stddev", Tok::kStddev},
    {"stdvar", Tok::kStdvar},
    {"topk", Tok::kTopk},
    {"bottomk", Tok::kBottomk},
    {"count_values", Tok::kCountValues},
    {"quantile", Tok::kQuantile},
    {"offset", Tok::kOffset},
    {"by", Tok::kBy},
    {"without", Tok::kWithout},
    {"on", Tok::kOn},
    {"ignoring", Tok::kIgnoring},
    {"group_left", Tok::kGroupLeft},
    {"group_right", Tok::kGroupRight},
    {"bool", Tok::kBool},
    {"start", Tok::kStart},
    {"end", Tok::kEnd},
    {"inf", Tok::kNumber},
    {"nan", Tok::kNumber},
};

}  // namespace

bool IsAggregatorTok(Tok t) { return t >= Tok::kAvg && t <= Tok::kTopk; }
bool IsKeywordTok(Tok t) { return t >= Tok::kBool && t <= Tok::kWithout; }
bool IsOperatorTok(Tok t) { return t >= Tok::kAdd && t <= Tok::kLunless; }

std::string GoQuote(std::string_view s) {
  std::string out = "\"";
  size_t i = 0;
  while (i < s.size()) {
    int width = 0;
    bool invalid = false;
    char32_t r = DecodeRune(s, i, &width, &invalid);
    if (invalid) {
      out += "\\x" + Hex(static_cast<unsigned char>(s[i]), 2);
    } else {
      AppendQuotedRune(r, '"', &out);
    }
    i += width;
  }
  out += "\"";
  return out;
}

std::string GoQuoteRune(char32_t r) {
  std::string out = "'";
  AppendQuotedRune(r, '\'', &out);
  out += "'";
  return out;
}

std::string DescribeToken(const Token& tok) {
  switch (tok.type) {
    case Tok::kEOF:
      return "end of input";
    case Tok::kError:
      return tok.error;
    case Tok::kIdentifier:
      return "identifier " + GoQuote(tok.text);
    case Tok::kMetricIdentifier:
      return "metric identifier " + GoQuote(tok.text);
    case Tok::kNumber:
    case Tok::kString:
    case Tok::kDuration: {
      std::string prefix = tok.type == Tok::kNumber   ? "number "
                           : tok.type == Tok::kString ? "string "
                                                      : "duration ";
      // Go's %.10q: at most ten runes, then "...".
      size_t i = 0;
      int runes = 0;
      while (i < tok.text.size() && runes < 10) {
        int width = 0;
        bool invalid = false;
        DecodeRune(tok.text, i, &width, &invalid);
        i += width;
        ++runes;
      }
      if (i < tok.text.size()) return prefix + GoQuote(tok.text.substr(0, i)) + "...";
      return prefix + GoQuote(tok.text);
    }
    default:
      break;
  }
  if (IsKeywordTok(tok.type)) return "<" + std::string(tok.text) + ">";
  if (IsOperatorTok(tok.type)) return "<op:" + std::string(tok.text) + ">";
  if (IsAggregatorTok(tok.type)) return "<aggr:" + std::string(tok.text) + ">";
  return GoQuote(tok.text);
}

std::string UnquoteString(std::string_view text) {
  std::string out;
  if (text.size() < 2) return out;
  char quote = text.front();
  std::string_view body = text.substr(1, text.size() - 2);
  if (quote == '`') return std::string(body);
  size_t i = 0;
  while (i < body.size()) {
    char c = body[i];
    if (c != '\\') {
      out.push_back(c);
      ++i;
      continue;
    }
    ++i;
    if (i >= body.size()) break;
    char e = body[i++];
    switch (e) {
      case 'a':
        out.push_back('\a');
        break;
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'v':
        out.push_back('\v');
        break;
      case 'x': {
        unsigned v = 0;
        for (int k = 0; k < 2 && i < body.size(); ++k) v = v * 16 + DigitVal(body[i++]);
        out.push_back(static_cast<char>(v));
        break;
      }
      case 'u':
      case 'U': {
        int n = e == 'u' ? 4 : 8;
        char32_t v = 0;
        for (int k = 0; k < n && i < body.size(); ++k) v = v * 16 + DigitVal(body[i++]);
        AppendUtf8(v, &out);
        break;
      }
      default:
        if (e >= '0' && e <= '7') {
          unsigned v = static_cast<unsigned>(e - '0');
          for (int k = 0; k < 2 && i < body.size(); ++k) v = v * 8 + DigitVal(body[i++]);
          out.push_back(static_cast<char>(v));
        } else {
          out.push_back(e);  // \\, \" and \'
        }
    }
  }
  return out;
}

char32_t Lexer::NextRune() {
  last_pos_ = pos_;
  if (pos_ >= static_cast<int>(input_.size())) return kEof;
  int width = 0;
  bool invalid = false;
  char32_t r = DecodeRune(input_, pos_, &width, &invalid);
  pos_ += width;
  return r;
}

char32_t Lexer::Peek() {
  int saved = last_pos_;
  char32_t r = NextRune();
  pos_ = last_pos_;
  last_pos_ = saved;
  return r;
}

bool Lexer::Accept(std::string_view valid) {
  char32_t r = NextRune();
  if (r != kEof && r < 0x80 && valid.find(static_cast<char>(r)) != std::string_view::npos) {
    return true;
  }
  Backup();
  return false;
}

void Lexer::AcceptRun(std::string_view valid) {
  while (Accept(valid)) {
  }
}

Token Lexer::Emit(Tok type) {
  Token t;
  t.type = type;
  t.pos = start_;
  t.text = input_.substr(start_, pos_ - start_);
  start_ = pos_;
  return t;
}

Token Lexer::Error(std::string msg) {
  Token t;
  t.type = Tok::kError;
  t.pos = start_;
  t.error = std::move(msg);
  done_ = true;
  return t;
}

bool Lexer::ScanNumber() {
  std::string_view digits = "0123456789";
  if (Accept("0") && Accept("xX")) digits = "0123456789abcdefABCDEF";
  AcceptRun(digits);
  if (Accept(".")) AcceptRun(digits);
  if (Accept("eE")) {
    Accept("+-");
    AcceptRun("0123456789");
  }
  return !IsAlphaNumeric(Peek());
}

bool Lexer::AcceptRemainingDuration() {
  if (!Accept("smhdwy")) return false;
  Accept("s");
  while (Accept("0123456789")) {
    AcceptRun("0123456789");
    if (!Accept("smhdw")) return false;
    Accept("s");
  }
  return !IsAlphaNumeric(NextRune());
}

void Lexer::SkipComment() {
  while (pos_ < static_cast<int>(input_.size()) && input_[pos_] != '\n') ++pos_;
  start_ = pos_;
}

bool Lexer::LexEscape(char32_t quote, std::string* err) {
  int n = 0;
  uint32_t base = 0;
  uint32_t max = 0;
  char32_t ch = NextRune();
  switch (ch) {
    case 'a':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't':
    case 'v':
    case '\\':
      return true;
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
      n = 3;
      base = 8;
      max = 255;
      break;
    case 'x':
      ch = NextRune();
      n = 2;
      base = 16;
      max = 255;
      break;
    case 'u':
      ch = NextRune();
      n = 4;
      base = 16;
      max = 0x10FFFF;
      break;
    case 'U':
      ch = NextRune();
      n = 8;
      base = 16;
      max = 0x10FFFF;
      break;
    case kEof:
      *err = "escape sequence not terminated";
      return false;
    default:
      if (ch == quote) return true;
      *err = "unknown escape sequence " + FormatSharpU(ch);
      return false;
  }
  uint32_t x = 0;
  while (n > 0) {
    uint32_t d = ch == kEof ? 16 : static_cast<uint32_t>(DigitVal(ch));
    if (d >= base) {
      if (ch == kEof) {
        *err = "escape sequence not terminated";
      } else {
        *err = "illegal character " + FormatSharpU(ch) + " in escape sequence";
      }
      return false;
    }
    x = x * base + d;
    --n;
    if (n > 0) ch = NextRune();
  }
  if (x > max || (x >= 0xD800 && x < 0xE000)) {
    *err = "escape sequence is an invalid Unicode code point";
    return false;
  }
  return true;
}

Token Lexer::LexString(char32_t quote) {
  for (;;) {
    int at = pos_;
    char32_t r = NextRune();
    if (r == '\\') {
      std::string err;
      if (!LexEscape(quote, &err)) return Error(std::move(err));
      continue;
    }
    if (r == kEof || r == '\n') return Error("unterminated quoted string");
    if (r == 0xFFFD && pos_ - at == 1) return Error("invalid UTF-8 rune");
    if (r == quote) break;
  }
  return Emit(Tok::kString);
}

Token Lexer::LexRawString() {
  for (;;) {
    int at = pos_;
    char32_t r = NextRune();
    if (r == kEof) return Error("unterminated raw string");
    if (r == 0xFFFD && pos_ - at == 1) return Error("invalid UTF-8 rune");
    if (r == '`') break;
  }
  return Emit(Tok::kString);
}

Token Lexer::LexInsideBraces() {
  for (;;) {
    start_ = pos_;
    if (input_.substr(pos_).starts_with("#")) {
      SkipComment();
      continue;
    }
    char32_t r = NextRune();
    if (r == kEof) return Error("unexpected end of input inside braces");
    if (IsSpace(r)) continue;
    if (IsAlpha(r)) {
      while (IsAlphaNumeric(NextRune())) {
      }
      Backup();
      return Emit(Tok::kIdentifier);
    }
    switch (r) {
      case ',':
        return Emit(Tok::kComma);
      case '"':
      case '\'':
        return LexString(r);
      case '`':
        return LexRawString();
      case '=':
        if (NextRune() == '~') return Emit(Tok::kEqlRegex);
        Backup();
        return Emit(Tok::kEql);
      case '!': {
        char32_t nr = NextRune();
        if (nr == '~') return Emit(Tok::kNeqRegex);
        if (nr == '=') return Emit(Tok::kNeq);
        return Error("unexpected character after '!' inside braces: " +
                     GoQuoteRune(nr == kEof ? 0xFFFD : nr));
      }
      case '{':
        return Error("unexpected left brace '{'");
      case '}':
        brace_open_ = false;
        return Emit(Tok::kRightBrace);
      default:
        return Error("unexpected character inside braces: " + GoQuoteRune(r));
    }
  }
}

Token Lexer::Next() {
  if (done_) {
    start_ = pos_;
    return Emit(Tok::kEOF);
  }
  if (after_left_bracket_) {
    // The first thing inside `[` is a duration.
    after_left_bracket_ = false;
    while (IsSpace(Peek())) NextRune();
    start_ = pos_;
    if (ScanNumber()) return Error("missing unit character in duration");
    if (!AcceptRemainingDuration()) {
      return Error("bad duration syntax: " + GoQuote(input_.substr(start_, pos_ - start_)));
    }
    Backup();
    return Emit(Tok::kDuration);
  }
  for (;;) {
    if (brace_open_) return LexInsideBraces();
    start_ = pos_;
    if (input_.substr(pos_).starts_with("#")) {
      SkipComment();
      continue;
    }
    char32_t r = NextRune();
    if (r == kEof) {
      if (paren_depth_ != 0) return Error("unclosed left parenthesis");
      if (bracket_open_) return Error("unclosed left bracket");
      done_ = true;
      return Emit(Tok::kEOF);
    }
    if (IsSpace(r)) continue;
    switch (r) {
      case ',':
        return Emit(Tok::kComma);
      case '*':
        return Emit(Tok::kMul);
      case '/':
        return Emit(Tok::kDiv);
      case '%':
        return Emit(Tok::kMod);
      case '+':
        return Emit(Tok::kAdd);
      case '-':
        return Emit(Tok::kSub);
      case '^':
        return Emit(Tok::kPow);
      case '@':
        return Emit(Tok::kAt);
      case '=': {
        char32_t t = Peek();
        if (t == '=') {
          NextRune();
          return Emit(Tok::kEqlc);
        }
        if (t == '~') return Error("unexpected character after '=': '~'");
        return Emit(Tok::kEql);
      }
      case '!': {
        char32_t t = NextRune();
        if (t != '=') {
          return Error("unexpected character after '!': " + GoQuoteRune(t == kEof ? 0xFFFD : t));
        }
        return Emit(Tok::kNeq);
      }
      case '<':
        if (Peek() == '=') {
          NextRune();
          return Emit(Tok::kLte);
        }
        return Emit(Tok::kLss);
      case '>':
        if (Peek() == '=') {
          NextRune();
          return Emit(Tok::kGte);
        }
        return Emit(Tok::kGtr);
      case '"':
      case '\'':
        return LexString(r);
      case '`':
        return LexRawString();
      case '(':
        ++paren_depth_;
        return Emit(Tok::kLeftParen);
      case ')': {
        Token t = Emit(Tok::kRightParen);
        if (--paren_depth_ < 0) return Error("unexpected right parenthesis ')'");
        return t;
      }
      case '{':
        brace_open_ = true;
        return Emit(Tok::kLeftBrace);
      case '[':
        if (bracket_open_) return Error("unexpected left bracket '['");
        got_colon_ = false;
        bracket_open_ = true;
        after_left_bracket_ = true;
        return Emit(Tok::kLeftBracket);
      case ']':
        if (!bracket_open_) return Error("unexpected right bracket ']'");
        bracket_open_ = false;
        return Emit(Tok::kRightBracket);
      default:
        break;
    }
    if (IsDigit(r) || (r == '.' && IsDigit(Peek()))) {
      Backup();
      if (ScanNumber()) return Emit(Tok::kNumber);
      if (AcceptRemainingDuration()) {
        Backup();
        return Emit(Tok::kDuration);
      }
      return Error("bad number or duration syntax: " +
                   GoQuote(input_.substr(start_, pos_ - start_)));
    }
    if (bracket_open_ && r == ':') {
      if (got_colon_) return Error("unexpected colon ':'");
      got_colon_ = true;
      return Emit(Tok::kColon);
    }
    if ((IsAlpha(r) || r == ':') && !bracket_open_) {
      for (;;) {
        char32_t c = NextRune();
        if (!(IsAlphaNumeric(c) || c == ':')) break;
      }
      Backup();
      std::string_view word = input_.substr(start_, pos_ - start_);
      std::string lower(word);
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      for (const Keyword& k : kKeywords) {
        if (k.word == lower) return Emit(k.tok);
      }
      if (word.find(':') == std::string_view::npos) return Emit(Tok::kIdentifier);
      return Emit(Tok::kMetricIdentifier);
    }
    return Error("unexpected character: " + GoQuoteRune(r));
  }
}

}  // namespace tidemark::promql::internal
