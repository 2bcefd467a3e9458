// Why an exchange with IAM did not produce a token.
//
// One vocabulary for every failed attempt, whatever failed: the network, TLS,
// a deadline, IAM itself, or the shape of its reply. The kind decides how the
// token source reacts (see daemon/schedule.hpp); the rest is shown to
// operators in logs and in `status`. A Failure never holds a secret.
#pragma once

#include <boost/assert/source_location.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace iam_tokend {

enum class FailureKind {
    network,      // resolve, connect, reset, refused
    tls,          // handshake or certificate verification
    timeout,      // connect or whole-exchange deadline
    http,         // a non-2xx reply that is not an IAM error body
    iam,          // IAM's JSON error body (errorCode and friends)
    bad_response, // a 2xx reply that is not a usable token
    credential,   // the secret could not be read
};

std::string_view to_string(FailureKind kind);

struct Failure {
    FailureKind kind = FailureKind::network;
    std::string message;
    std::optional<int> http_status;
    std::optional<std::string> error_code; // IAM's errorCode, e.g. BXNIM0415E
    std::optional<std::string> request_id; // IAM's context.requestId
    std::optional<std::chrono::seconds> retry_after;

    // "message (HTTP 400, BXNIM0415E, request 1234)"
    std::string describe() const;
};

// Lets boost::system::result<T, Failure>::value() throw.
[[noreturn]] void throw_exception_from_error(const Failure& failure,
                                             const boost::source_location& location);

} // namespace iam_tokend
