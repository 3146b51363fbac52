// Prometheus API JSON: the envelope, query results and the number formats Prometheus uses.
//
// Values are JSON strings formatted like Go's strconv.AppendFloat with 'f' (or 'e' when
// |v| < 1e-6 or >= 1e21), shortest round trip: "2", "0.1", "1e+21", "NaN", "+Inf", "-Inf".
// Timestamps are JSON numbers of seconds with the milliseconds written out: 1700000000.123.
// Stateless and thread-safe.
#ifndef TIDEMARK_API_JSON_H_
#define TIDEMARK_API_JSON_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "query/value.h"
#include "storage/labels.h"

namespace tidemark::api {

// Appends `v` as Prometheus formats a sample value (without quotes).
void AppendValue(std::string& out, double v);
std::string FormatValue(double v);
// Appends the millisecond timestamp `t_ms` as a JSON number of seconds.
void AppendTimestamp(std::string& out, int64_t t_ms);
// Appends `s` as a JSON string literal, escaping as Go's encoding/json does.
void AppendJsonString(std::string& out, std::string_view s);
// Appends {"name":"value",...}.
void AppendLabels(std::string& out, const Labels& labels);
// Appends {"resultType":"...","result":...} for a query result.
void AppendQueryData(std::string& out, const promql::Value& value);

// {"status":"success","data":<data_json>[,"warnings":[...]]}
std::string SuccessEnvelope(std::string_view data_json, const std::vector<std::string>& warnings = {});
// {"status":"error","errorType":"...","error":"..."}
std::string ErrorEnvelope(std::string_view error_type, std::string_view message);
// A JSON array of strings: ["a","b"].
std::string StringArray(const std::vector<std::string>& items);

}  // namespace tidemark::api

#endif  // TIDEMARK_API_JSON_H_
