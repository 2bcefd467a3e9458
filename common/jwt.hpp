// Reading the one claim the daemon needs from an access token: its expiry.
//
// IAM's access tokens are JWTs. The daemon never checks their signature (the
// token is IAM's to verify, not ours); it only reads the `exp` claim, as a
// second opinion on a token's life when no boot-time measure of it exists,
// e.g. for a token saved by an earlier run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace iam_tokend {

// Tokens larger than this are not decoded.
inline constexpr std::size_t max_jwt_length = 64 * 1024;

// The `exp` claim (Unix time) of a JWT, or nothing when the token is not a
// JWT or its payload has no numeric `exp`.
std::optional<std::int64_t> jwt_expiry(std::string_view token);

} // namespace iam_tokend
