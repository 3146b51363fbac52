// libFuzzer target for the PromQL parser: any input must parse or fail cleanly (no crash, no
// sanitizer report). When it parses, parse -> print -> parse must round-trip:
//   - the printed form parses again,
//   - the second tree equals the first (every node, operator, matcher, number bit pattern,
//     duration and modifier; source positions aside), and
//   - printing the second tree gives the same text (Print is a fixed point).
// Build and run with tests/fuzz/run_fuzzer.sh promql_fuzz SECONDS (ctest label `fuzz`).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>

#include "query/ast.h"
#include "query/parser.h"

namespace {

using namespace tidemark::promql;  // NOLINT: a test's own file

void Put(std::string* out, std::string_view s) {
  out->append(std::to_string(s.size()));
  out->push_back(':');
  out->append(s);
}

void PutNumber(std::string* out, double v) {
  if (v != v) {  // every NaN is the same number to PromQL
    out->append("NaN;");
    return;
  }
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  out->append(std::to_string(bits));
  out->push_back(';');
}

void PutAt(std::string* out, const AtModifier& at) {
  out->append("@");
  out->append(std::to_string(static_cast<int>(at.kind)));
  if (at.kind == AtModifier::Kind::kTimestamp) out->append("," + std::to_string(at.timestamp_ms));
  out->push_back(';');
}

// A structural dump of the tree that ignores positions, so two trees are equal iff their dumps
// are. Unlike Print it never normalises anything, so it also catches printer/parser disagreements
// that happen to print the same.
void Dump(const Expr& e, std::string* out);

void DumpPtr(const ExprPtr& e, std::string* out) {
  if (e == nullptr) {
    out->append("null;");
    return;
  }
  Dump(*e, out);
}

void Dump(const Expr& e, std::string* out) {
  out->append("(");
  out->append(std::to_string(e.node.index()));
  out->push_back(' ');
  std::visit(
      [out](const auto& n) {
        using T = std::decay_t<decltype(n)>;
        if constexpr (std::is_same_v<T, NumberLiteral>) {
          PutNumber(out, n.value);
        } else if constexpr (std::is_same_v<T, StringLiteral>) {
          Put(out, n.value);
        } else if constexpr (std::is_same_v<T, VectorSelector>) {
          Put(out, n.name);
          for (const auto& m : n.matchers) {
            out->append(std::to_string(static_cast<int>(m.type())));
            Put(out, m.name());
            Put(out, m.value());
          }
          out->append("o" + std::to_string(n.offset_ms) + ";");
          PutAt(out, n.at);
        } else if constexpr (std::is_same_v<T, MatrixSelector>) {
          DumpPtr(n.selector, out);
          out->append("r" + std::to_string(n.range_ms) + ";");
        } else if constexpr (std::is_same_v<T, SubqueryExpr>) {
          DumpPtr(n.expr, out);
          out->append("r" + std::to_string(n.range_ms) + "s" + std::to_string(n.step_ms) + "o" +
                      std::to_string(n.offset_ms) + ";");
          PutAt(out, n.at);
        } else if constexpr (std::is_same_v<T, Call>) {
          Put(out, n.func);
          for (const auto& a : n.args) DumpPtr(a, out);
        } else if constexpr (std::is_same_v<T, AggregateExpr>) {
          out->append(std::to_string(static_cast<int>(n.op)) + (n.without ? "w" : "b") +
                      (n.has_grouping ? "g" : "-"));
          for (const auto& g : n.grouping) Put(out, g);
          DumpPtr(n.param, out);
          DumpPtr(n.expr, out);
        } else if constexpr (std::is_same_v<T, BinaryExpr>) {
          out->append(std::to_string(static_cast<int>(n.op)) + (n.return_bool ? "B" : "-"));
          if (n.matching.has_value()) {
            const VectorMatching& vm = *n.matching;
            out->append("m" + std::to_string(static_cast<int>(vm.card)) + (vm.on ? "on" : "ig") +
                        (vm.has_matching ? "+" : "-"));
            for (const auto& l : vm.matching_labels) Put(out, l);
            out->append("|");
            for (const auto& l : vm.include) Put(out, l);
          }
          DumpPtr(n.lhs, out);
          DumpPtr(n.rhs, out);
        } else if constexpr (std::is_same_v<T, UnaryExpr>) {
          out->append(n.negate ? "-" : "+");
          DumpPtr(n.expr, out);
        } else if constexpr (std::is_same_v<T, ParenExpr>) {
          DumpPtr(n.expr, out);
        }
      },
      e.node);
  out->append(")");
}

[[noreturn]] void Fail(const char* what, std::string_view a, std::string_view b) {
  std::fprintf(stderr, "promql_fuzz: %s\n--- first:\n%.*s\n--- second:\n%.*s\n", what,
               static_cast<int>(a.size()), a.data(), static_cast<int>(b.size()), b.data());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view query(reinterpret_cast<const char*>(data), size);
  auto parsed = Parse(query);
  if (!parsed.ok()) return 0;
  std::string printed = Print(**parsed);
  auto reparsed = Parse(printed);
  if (!reparsed.ok()) {
    std::string reason(reparsed.status().message());
    Fail("the printed form does not parse", printed, reason);
  }
  std::string tree1, tree2;
  Dump(**parsed, &tree1);
  Dump(**reparsed, &tree2);
  if (tree1 != tree2) Fail("parse(print(ast)) != ast", tree1 + "\n" + printed, tree2);
  std::string printed2 = Print(**reparsed);
  if (printed2 != printed) Fail("print is not a fixed point", printed, printed2);
  return 0;
}
