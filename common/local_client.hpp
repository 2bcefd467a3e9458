// A small blocking client for the daemon's local API, used by the CLI.
//
// One request per connection over the Unix socket, HTTP/1.1 with
// `Connection: close`, read to the end. Plain POSIX calls: the CLI starts,
// asks once and exits, so it has no use for an event loop.
#pragma once

#include <chrono>
#include <string>

namespace iam_tokend {

inline constexpr const char* default_socket_path = "/run/iam-tokend/tokend.sock";
inline constexpr std::size_t max_local_reply = 1024 * 1024;

struct LocalResponse {
    int status = 0;
    std::string body;
    std::string error; // set when no reply could be read; status is 0 then
};

// GET or POST `target` (e.g. "/v1/token?format=raw") on the socket at
// `socket_path`, giving up after `timeout`.
LocalResponse local_request(const std::string& socket_path,
                            const std::string& method,
                            const std::string& target,
                            std::chrono::milliseconds timeout);

} // namespace iam_tokend
