// Bearer-token authentication and authorization, and tenant-name validation.
//
// Tokens are configured only as SHA-256 hashes; a presented token is hashed and compared with
// every configured hash in constant time. With no tokens configured, auth is off and every
// request is allowed. An Authenticator is immutable and thread-safe.
#ifndef TIDEMARK_API_AUTH_H_
#define TIDEMARK_API_AUTH_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace tidemark::api {

enum class Role : uint8_t { kRead, kWrite, kAdmin };
// What an endpoint needs: reading (query APIs), writing (remote write) or administration
// (deleting series; only the admin role has it).
enum class Permission : uint8_t { kRead, kWrite, kAdmin };

absl::StatusOr<Role> ParseRole(std::string_view text);  // "read" | "write" | "admin"
std::string_view RoleName(Role role);

struct TokenConfig {
  std::string name;                    // for logs, never the token itself
  std::array<uint8_t, 32> sha256 = {};  // SHA-256 of the token
  Role role = Role::kRead;
  std::vector<std::string> tenants;    // allowed tenants; "*" allows every tenant
};

struct AuthConfig {
  std::vector<TokenConfig> tokens;  // empty: auth off
};

// The lower-case hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);
// Decodes 64 hex digits into a hash; InvalidArgument otherwise.
absl::StatusOr<std::array<uint8_t, 32>> ParseSha256Hex(std::string_view hex);

// OK for a usable X-Scope-OrgID: non-empty, at most 150 printable ASCII characters, no '/'
// (nor "." / ".."). InvalidArgument with the reason otherwise.
absl::Status ValidateTenant(std::string_view tenant);

struct AuthDecision {
  int code = 0;          // 0 allowed; 401 no or unknown token; 403 role or tenant not allowed
  std::string message;   // reason for the client when refused
  std::string token_name;
};

class Authenticator {
 public:
  explicit Authenticator(AuthConfig config = {});
  bool enabled() const { return !config_.tokens.empty(); }

  // Decides whether a request with this Authorization header may do `needed` on `tenant`.
  AuthDecision Check(std::string_view authorization, Permission needed,
                     std::string_view tenant) const;

 private:
  AuthConfig config_;
};

}  // namespace tidemark::api

#endif  // TIDEMARK_API_AUTH_H_
