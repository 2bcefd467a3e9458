#include "local_client.hpp"

#include <cerrno>
#include <charconv>
#include <cstring>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace iam_tokend {

namespace {

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

std::string system_error(const std::string& what) {
    return what + ": " + std::strerror(errno);
}

bool wait_readable(int fd, std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
        return false;
    }
    pollfd entry{fd, POLLIN, 0};
    return poll(&entry, 1, static_cast<int>(left.count())) > 0;
}

// Splits "HTTP/1.1 200 OK\r\n...\r\n\r\nbody" into status and body.
LocalResponse parse(const std::string& raw) {
    LocalResponse response;
    auto header_end = raw.find("\r\n\r\n");
    int status = 0;
    if (raw.starts_with("HTTP/1.") && raw.size() > 12) {
        std::from_chars(raw.data() + 9, raw.data() + 12, status);
    }
    if (header_end == std::string::npos || status == 0) {
        response.error = "the daemon sent a reply that is not HTTP";
        return response;
    }
    response.status = status;
    response.body = raw.substr(header_end + 4);
    return response;
}

} // namespace

LocalResponse local_request(const std::string& socket_path,
                            const std::string& method,
                            const std::string& target,
                            std::chrono::milliseconds timeout) {
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
    if (send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size())) {
        failed.error = system_error("cannot send the request");
        return failed;
    }

    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string raw;
    char chunk[4096];
    for (;;) {
        if (!wait_readable(fd.get(), deadline)) {
            failed.error = "no reply from " + socket_path + " in time";
            return failed;
        }
        ssize_t got = recv(fd.get(), chunk, sizeof chunk, 0);
        if (got < 0) {
            failed.error = system_error("cannot read the reply");
            return failed;
        }
        if (got == 0) {
            break;
        }
        raw.append(chunk, static_cast<std::size_t>(got));
        if (raw.size() > max_local_reply) {
            failed.error = "the reply is too large";
            return failed;
        }
    }
    return parse(raw);
}

} // namespace iam_tokend
