// Reading IAM's replies to the token endpoint.
//
// A success carries the token; anything else is turned into a Failure that
// says what was wrong without quoting a secret. The parser never throws and
// accepts only what it can fully understand: a reply that is not exactly a
// usable token is an error of that attempt, never a partial token.
#pragma once

#include "failure.hpp"

#include <boost/system/result.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace iam_tokend {

// Bounds on `expires_in`. Anything outside is treated as a broken reply
// rather than trusted: a week is far beyond any IAM token life.
inline constexpr std::chrono::seconds min_expires_in{1};
inline constexpr std::chrono::seconds max_expires_in{7 * 24 * 3600};

// The longest token (access, refresh or UAA) a reply may carry; a longer
// one makes the reply an error. IAM's tokens are a few kilobytes; this
// leaves room for tokens that carry many claims.
inline constexpr std::size_t max_token_size = 64 * 1024;

// How much of an unexpected body a log line may quote, after cleaning.
inline constexpr std::size_t body_excerpt_length = 80;
// How much of IAM's errorMessage, errorCode and requestId is kept.
inline constexpr std::size_t error_message_length = 300;
inline constexpr std::size_t error_field_length = 80;

struct TokenGrant {
    std::string access_token;
    // Unset when IAM sent none, an empty one, null, or "not_supported".
    std::optional<std::string> refresh_token;
    std::string token_type;
    std::chrono::seconds expires_in{0};
    std::optional<std::int64_t> expiration; // IAM's Unix time; reported, never scheduled on
    std::optional<std::string> uaa_token;
    std::optional<std::string> uaa_refresh_token;
};

struct HttpReply {
    int status = 0;
    std::string content_type;
    std::string body;
    std::optional<std::string> retry_after; // the raw header value
};

// The token in a reply, or why there is none.
boost::system::result<TokenGrant, Failure> parse_token_reply(const HttpReply& reply);

// A non-2xx reply as a Failure: IAM's JSON error body when there is one
// (errorCode, errorMessage, context.requestId), else the status and a short
// cleaned excerpt of the body.
Failure parse_error_reply(const HttpReply& reply);

// `Retry-After` as delta-seconds or as an HTTP date (relative to `now`).
std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now);

// The first body_excerpt_length characters with control characters and
// quotes replaced, and long token-like runs masked: safe to put on one log
// line even when the body was a token reply cut short.
std::string body_excerpt(std::string_view body);

// At most `limit` characters of a short field IAM sent (an error code, a
// request id, a message), with control characters and quotes replaced.
std::string printable(std::string_view text, std::size_t limit);

} // namespace iam_tokend
