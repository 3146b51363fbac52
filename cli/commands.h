// The command-line subcommands of this module, registered on the `tidemark` CLI11 app:
//   query, labels, label-values, series   (PromQL and metadata, table | json | csv)
//   slo report, slo rules                 (error budgets and burn rates; Prometheus rule files)
// Each reads from `--server URL` or `--storage.path DIR`. Exit codes: 0 success, 1 error (the
// reason on stderr), 3 when --fail-on-exhausted is given and an SLO has no budget left.
#ifndef TIDEMARK_CLI_COMMANDS_H_
#define TIDEMARK_CLI_COMMANDS_H_

#include <memory>
#include <optional>

#include <CLI/CLI.hpp>

namespace tidemark::cli {

inline constexpr int kExitExhausted = 3;

class Commands {
 public:
  // Adds the subcommands to `app`, which must outlive this object.
  explicit Commands(CLI::App& app);
  ~Commands();

  // After parsing: the exit code when one of these subcommands was chosen (having run it),
  // nullopt otherwise.
  std::optional<int> Run();

  struct Flags;

 private:
  std::unique_ptr<Flags> flags_;
};

}  // namespace tidemark::cli

#endif  // TIDEMARK_CLI_COMMANDS_H_
