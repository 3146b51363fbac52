// A tiny logger: one logfmt line per call on stderr (`ts=... level=info msg="..."`).
// Thread-safe (each line is written with a single call).
#ifndef TIDEMARK_API_LOG_H_
#define TIDEMARK_API_LOG_H_

#include <string_view>

namespace tidemark {

void LogInfo(std::string_view message);
void LogWarn(std::string_view message);
void LogError(std::string_view message);

}  // namespace tidemark

#endif  // TIDEMARK_API_LOG_H_
