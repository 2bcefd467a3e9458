// One HTTPS POST to IAM, as a coroutine with verified TLS and two deadlines.
//
// TLS is always verified: against the system store, or against `ca_file`
// alone when one is set. SNI is sent and the certificate must name the host.
// `connect` bounds resolving and connecting; `request` bounds the whole
// exchange (connect, handshake, request, headers and body) so a server that
// drips one byte at a time cannot hold an attempt open. A timeout names the
// phase it interrupted. Replies are read up to max_reply_body bytes; a
// longer one is an error named with its status, type and length, unread.
// A failure after the headers arrived says what they were and how much
// of the body came, with a short cleaned excerpt of it.
//
// With a proxy, the connection goes to the proxy, which is asked to open a
// tunnel (HTTP CONNECT) to IAM's host and port; TLS then runs through the
// tunnel to IAM itself, verified against IAM's host name as without a
// proxy. Both deadlines include the proxy's part: reaching the proxy and
// its answer to CONNECT count against `connect`. A proxy that refuses the
// tunnel (407, 403, 502...) fails the attempt with the proxy's answer.
//
// Each call opens its own connection and TLS context: IAM is called once per
// refresh, so there is nothing worth pooling, and a rotated `ca_file` is
// picked up at the next attempt.
#pragma once

#include "config.hpp"
#include "failure.hpp"
#include "iam_response.hpp"
#include "proxy.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace iam_tokend {

// Room for an access, a refresh and the two UAA tokens at their largest,
// and 64 KiB for the rest of the reply (or an error page).
inline constexpr std::size_t max_reply_body = 4 * max_token_size + 64 * 1024;
inline constexpr std::size_t max_reply_header = 16 * 1024;

struct HttpsRequest {
    std::string url; // https://host[:port]/path, validated by the config
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    std::optional<std::string> ca_file;
    Timeouts timeouts;
    std::optional<ProxySetting> proxy; // null: connect to IAM directly
};

// The reply whatever its status, or a Failure when none was read.
boost::asio::awaitable<boost::system::result<HttpReply, Failure>>
https_post(boost::asio::any_io_executor executor, HttpsRequest request);

} // namespace iam_tokend
