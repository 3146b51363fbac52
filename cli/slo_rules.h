// Prometheus rule files for SLOs: per SLO a group with recording rules of the error ratio over
// each burn-rate window (`slo:sli_error:ratio_rate5m` ... and the SLO window) and the
// multiwindow multi-burn-rate alerts (page: 14.4x 1h&5m or 6x 6h&30m; ticket: 3x 1d&2h or 1x
// 3d&6h). Written with yaml-cpp's emitter. Pure; thread-safe.
#ifndef TIDEMARK_CLI_SLO_RULES_H_
#define TIDEMARK_CLI_SLO_RULES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cli/slo.h"

namespace tidemark::cli {

absl::StatusOr<std::string> RenderRules(const std::vector<SloDefinition>& slos);

}  // namespace tidemark::cli

#endif  // TIDEMARK_CLI_SLO_RULES_H_
