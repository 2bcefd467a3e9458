// A small client for iam-tokend's local API, in this one header.
//
// It needs nothing but the C++20 standard library and POSIX: copy the file
// into a program, include it, and ask for a token:
//
//     auto reply = iam_tokend::fetch_token({.profile = "default"});
//     if (reply.status == 200) { use(reply.body); }
//
// Each call is one blocking request on its own connection over the Unix
// socket (HTTP/1.1, `Connection: close`, read to the end), bounded by a
// timeout. Ask each time a token is needed: the daemon answers from memory.
// The iam-tokend command line uses this same header for `token` and
// `status`.
#pragma once

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

namespace iam_tokend {

inline constexpr const char* default_socket_path = "/run/iam-tokend/tokend.sock";
inline constexpr const char* socket_environment_variable = "IAM_TOKEND_SOCKET";
inline constexpr std::size_t max_local_reply = 1024 * 1024;
// The daemon's own default for `wait`, and how much longer a client waits
// for the reply than it asks the daemon to wait for a token.
inline constexpr std::chrono::seconds default_token_wait{10};
inline constexpr std::chrono::seconds reply_margin{5};
inline constexpr double max_token_wait_s = 300; // the most the daemon accepts

struct LocalResponse {
    int status = 0;
    std::string body;
    std::string error; // set when no reply could be read; status is 0 then
};

// What to ask GET /v1/token for. Empty strings leave the daemon's default;
// values are passed on as written and checked by the daemon.
struct TokenQuery {
    std::string profile{};   // a profile name (letters, digits, '_', '.', '-')
    std::string format{};    // "raw", "header" or "json" (the daemon's default)
    std::string kind{};      // "iam" (the default) or "uaa"
    std::string min_valid{}; // seconds the token must stay valid
    std::string wait{};      // seconds to wait for a token that does not exist yet
};

// $IAM_TOKEND_SOCKET when it is set and not empty, else the default path.
inline std::string client_socket_path() {
    const char* from_environment = std::getenv(socket_environment_variable);
    if (from_environment != nullptr && *from_environment != '\0') {
        return from_environment;
    }
    return default_socket_path;
}

// "/v1/token[/profile]?format=...&kind=..." for `query`.
inline std::string token_target(const TokenQuery& query) {
    std::string target = "/v1/token";
    if (!query.profile.empty()) {
        target += "/" + query.profile;
    }
    char separator = '?';
    auto add = [&](const char* name, const std::string& value) {
        if (!value.empty()) {
            target += separator;
            target += name;
            target += "=" + value;
            separator = '&';
        }
    };
    add("format", query.format);
    add("kind", query.kind);
    add("wait", query.wait);
    add("min_valid", query.min_valid);
    return target;
}

namespace local_client_detail {

class Descriptor {
public:
    explicit Descriptor(int fd) : fd_(fd) {}
    ~Descriptor() {
        if (fd_ >= 0) {
            close(fd_);
        }
    }
    Descriptor(const Descriptor&) = delete;
    Descriptor& operator=(const Descriptor&) = delete;
    int get() const { return fd_; }

private:
    int fd_;
};

inline std::string system_error(const std::string& what) {
    return what + ": " + std::strerror(errno);
}

inline bool wait_readable(int fd, std::chrono::steady_clock::time_point deadline) {
    auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
        return false;
    }
    pollfd entry{fd, POLLIN, 0};
    return poll(&entry, 1, static_cast<int>(left.count())) > 0;
}

// Splits "HTTP/1.1 200 OK\r\n...\r\n\r\nbody" into status and body.
inline LocalResponse parse(const std::string& raw) {
    constexpr std::string_view version = "HTTP/1.";
    constexpr std::size_t status_at = 9; // after "HTTP/1.1 "
    constexpr std::size_t status_digits = 3;
    constexpr std::string_view head_end = "\r\n\r\n";

    LocalResponse response;
    int status = 0;
    if (raw.starts_with(version) && raw.size() > status_at + status_digits) {
        const char* first = raw.data() + status_at;
        std::from_chars(first, first + status_digits, status);
    }
    auto body_at = raw.find(head_end);
    if (body_at == std::string::npos || status == 0) {
        response.error = "the daemon sent a reply that is not HTTP";
        return response;
    }
    response.status = status;
    response.body = raw.substr(body_at + head_end.size());
    return response;
}

inline bool send_all(int fd, const std::string& data) {
    std::size_t sent = 0;
    while (sent < data.size()) {
        ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        sent += static_cast<std::size_t>(n);
    }
    return true;
}

} // namespace local_client_detail

// `method` (GET or POST) `target` (e.g. "/v1/status") on the socket at
// `socket_path`, giving up after `timeout`. The reply whatever its status;
// `error` says why there is none.
inline LocalResponse local_request(const std::string& socket_path,
                                   const std::string& method,
                                   const std::string& target,
                                   std::chrono::milliseconds timeout) {
    using namespace local_client_detail;
    LocalResponse failed;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (socket_path.size() >= sizeof address.sun_path) {
        failed.error = "socket path is too long: " + socket_path;
        return failed;
    }
    std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);

    Descriptor fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) {
        failed.error = system_error("cannot create a socket");
        return failed;
    }
    if (connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        failed.error =
            system_error("cannot connect to " + socket_path + " (is iam-tokend running?)");
        return failed;
    }

    std::string request = method + " " + target +
                          " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                          "Content-Length: 0\r\n\r\n";
    if (!send_all(fd.get(), request)) {
        failed.error = system_error("cannot send the request");
        return failed;
    }

    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string raw;
    std::array<char, 4096> chunk{};
    for (;;) {
        if (!wait_readable(fd.get(), deadline)) {
            failed.error = "no reply from " + socket_path + " in time";
            return failed;
        }
        ssize_t got = recv(fd.get(), chunk.data(), chunk.size(), 0);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0) {
            failed.error = system_error("cannot read the reply");
            return failed;
        }
        if (got == 0) {
            break;
        }
        raw.append(chunk.data(), static_cast<std::size_t>(got));
        if (raw.size() > max_local_reply) {
            failed.error = "the reply is too large";
            return failed;
        }
    }
    return parse(raw);
}

// GET /v1/token as `query` asks. With status 200 the body is the token (or
// its JSON with format "json"); otherwise it is the daemon's JSON error.
// The reply is awaited for the query's `wait` (or the daemon's default)
// plus reply_margin.
inline LocalResponse fetch_token(const TokenQuery& query = {},
                                 const std::string& socket_path = client_socket_path()) {
    std::chrono::milliseconds timeout = default_token_wait;
    if (!query.wait.empty()) {
        double seconds = std::strtod(query.wait.c_str(), nullptr);
        seconds = seconds >= 0 ? std::min(seconds, max_token_wait_s) : 0; // NaN too
        timeout = std::chrono::milliseconds(static_cast<long>(seconds * 1000));
    }
    return local_request(socket_path, "GET", token_target(query), timeout + reply_margin);
}

} // namespace iam_tokend
