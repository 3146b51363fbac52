#include "api/log.h"

#include <cstdio>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace tidemark {
namespace {

void Log(std::string_view level, std::string_view message) {
  std::string line = "ts=";
  line += absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  line += " level=";
  line += level;
  line += " msg=\"";
  for (char c : message) {
    if (c == '"' || c == '\\') line.push_back('\\');
    if (c == '\n') {
      line += "\\n";
      continue;
    }
    line.push_back(c);
  }
  line += "\"\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace

void LogInfo(std::string_view message) { Log("info", message); }
void LogWarn(std::string_view message) { Log("warn", message); }
void LogError(std::string_view message) { Log("error", message); }

}  // namespace tidemark
