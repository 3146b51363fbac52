#include "api/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cctype>

#include "absl/strings/str_cat.h"

namespace tidemark::api {
namespace {

std::array<uint8_t, 32> Sha256(std::string_view data) {
  std::array<uint8_t, 32> digest = {};
  unsigned int len = 0;
  // EVP_Digest only fails on allocation failure; a zero digest then matches no token.
  if (EVP_Digest(data.data(), data.size(), digest.data(), &len, EVP_sha256(), nullptr) != 1 ||
      len != digest.size()) {
    digest.fill(0);
  }
  return digest;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

absl::StatusOr<Role> ParseRole(std::string_view text) {
  if (text == "read") return Role::kRead;
  if (text == "write") return Role::kWrite;
  if (text == "admin") return Role::kAdmin;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown role \"", std::string(text), "\" (want read, write or admin)"));
}

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kRead: return "read";
    case Role::kWrite: return "write";
    case Role::kAdmin: return "admin";
  }
  return "unknown";
}

std::string Sha256Hex(std::string_view data) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : Sha256(data)) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xf]);
  }
  return out;
}

absl::StatusOr<std::array<uint8_t, 32>> ParseSha256Hex(std::string_view hex) {
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::array<uint8_t, 32> out = {};
  if (hex.size() != 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("sha256 must be 64 hex digits, got ", hex.size(), " characters"));
  }
  for (size_t i = 0; i < 32; ++i) {
    int hi = digit(hex[2 * i]), lo = digit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return absl::InvalidArgumentError("sha256 has a non-hex character");
    out[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return out;
}

absl::Status ValidateTenant(std::string_view tenant) {
  if (tenant.empty()) return absl::InvalidArgumentError("tenant ID is empty");
  if (tenant.size() > 150) {
    return absl::InvalidArgumentError(
        absl::StrCat("tenant ID is too long: ", tenant.size(), " characters (max 150)"));
  }
  if (tenant == "." || tenant == "..") {
    return absl::InvalidArgumentError("tenant ID must not be \".\" or \"..\"");
  }
  for (char ch : tenant) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c == '/') return absl::InvalidArgumentError("tenant ID must not contain '/'");
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError("tenant ID must be printable ASCII without spaces");
    }
  }
  return absl::OkStatus();
}

Authenticator::Authenticator(AuthConfig config) : config_(std::move(config)) {}

AuthDecision Authenticator::Check(std::string_view authorization, Permission needed,
                                  std::string_view tenant) const {
  AuthDecision decision;
  if (!enabled()) return decision;
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size() ||
      !EqualsIgnoreCase(authorization.substr(0, kScheme.size()), kScheme)) {
    decision.code = 401;
    decision.message = "unauthorized: missing bearer token";
    return decision;
  }
  std::string_view token = authorization.substr(kScheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  std::array<uint8_t, 32> presented = Sha256(token);
  // Compare with every configured hash, without stopping early.
  const TokenConfig* match = nullptr;
  for (const TokenConfig& t : config_.tokens) {
    if (CRYPTO_memcmp(t.sha256.data(), presented.data(), presented.size()) == 0) match = &t;
  }
  if (match == nullptr || token.empty()) {
    decision.code = 401;
    decision.message = "unauthorized: unknown token";
    return decision;
  }
  decision.token_name = match->name;
  bool role_ok = match->role == Role::kAdmin ||
                 (needed == Permission::kRead && match->role == Role::kRead) ||
                 (needed == Permission::kWrite && match->role == Role::kWrite);
  if (!role_ok) {
    decision.code = 403;
    decision.message = absl::StrCat("forbidden: token \"", match->name, "\" has role ",
                                    std::string(RoleName(match->role)), ", this endpoint needs ",
                                    needed == Permission::kRead    ? "read"
                                    : needed == Permission::kWrite ? "write"
                                                                   : "admin");
    return decision;
  }
  bool tenant_ok = std::any_of(match->tenants.begin(), match->tenants.end(),
                               [&](const std::string& t) { return t == "*" || t == tenant; });
  if (!tenant_ok) {
    decision.code = 403;
    decision.message = absl::StrCat("forbidden: token \"", match->name,
                                    "\" may not use tenant \"", std::string(tenant), "\"");
  }
  return decision;
}

}  // namespace tidemark::api
