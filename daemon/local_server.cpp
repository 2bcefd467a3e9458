#include "local_server.hpp"

#include "rendered_reply.hpp"
#include "request_head.hpp"
#include "spawn.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <spdlog/spdlog.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace iam_tokend {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::as_tuple;
using asio::use_awaitable;
using Protocol = asio::local::stream_protocol;
using Clock = std::chrono::steady_clock;

constexpr unsigned http_1_1 = 11;

namespace {

std::runtime_error socket_error(const std::string& path, const std::string& what) {
    return std::runtime_error("socket " + path + ": " + what);
}

// True when a live process accepts connections on the socket at `path`.
bool someone_listens(asio::any_io_executor executor, const std::string& path) {
    Protocol::socket probe(std::move(executor));
    boost::system::error_code ec;
    probe.connect(Protocol::endpoint(path), ec);
    return !ec;
}

void prepare_path(asio::any_io_executor executor, const std::string& path) {
    namespace fs = std::filesystem;
    fs::path folder = fs::path(path).parent_path();
    std::error_code ec;
    if (!folder.empty() && !fs::exists(folder, ec)) {
        fs::create_directories(folder, ec);
        if (ec) {
            throw socket_error(path, "cannot create its folder: " + ec.message());
        }
        chmod(folder.c_str(), 0755);
    }

    struct stat info {};
    if (lstat(path.c_str(), &info) != 0) {
        return;
    }
    if (!S_ISSOCK(info.st_mode)) {
        throw socket_error(path, "exists and is not a socket; not replacing it");
    }
    if (someone_listens(std::move(executor), path)) {
        throw socket_error(path, "another process is serving on it (is iam-tokend running?)");
    }
    spdlog::info("removing stale socket {}", path);
    unlink(path.c_str());
}

Peer peer_of(Protocol::socket& socket) {
    ucred credentials{};
    socklen_t length = sizeof credentials;
    Peer peer;
    if (getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0) {
        peer.pid = credentials.pid;
        peer.uid = credentials.uid;
        peer.gid = credentials.gid;
    }
    return peer;
}

// The reply to a request the parser refused, or none when the client
// simply went away (or was closed for idling).
std::optional<LocalReply> refusal(const boost::system::error_code& ec) {
    if (ec == http::error::header_limit) {
        return Router::error(431, "headers_too_large", "request headers are too large");
    }
    if (ec == http::error::body_limit) {
        return Router::error(413, "body_too_large", "request body is too large");
    }
    if (ec.category() == make_error_code(http::error::bad_method).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message) {
        return Router::error(400, "bad_request", "malformed HTTP request");
    }
    return std::nullopt;
}

// Writes a reply with one gathered write; false when the client is gone.
asio::awaitable<bool> send(Protocol::socket& socket,
                           const RenderedReply& reply,
                           unsigned request_version,
                           bool keep_alive) {
    std::array<asio::const_buffer, 3> parts{
        asio::buffer(reply.head),
        asio::buffer(end_of_head(request_version, keep_alive)),
        asio::buffer(reply.body),
    };
    auto [ec, written] = co_await asio::async_write(socket, parts, as_tuple(use_awaitable));
    co_return !ec;
}

} // namespace

// A client connection and the time by which its next request must have
// been read. Instead of a timer per request, one timer sweeps over every
// connection (close_idle_connections): a request then costs no timer
// operation at all, and a connection that idles is closed between
// idle_connection_timeout and idle_connection_timeout + idle_sweep_interval
// after its last reply.
struct LocalServer::Connection {
    static constexpr Clock::time_point busy = Clock::time_point::max();

    Socket socket;
    Clock::time_point deadline = busy;

    bool waiting() const { return deadline != busy; }
};

LocalServer::LocalServer(asio::any_io_executor executor, Router& router, SocketSettings settings)
    : executor_(std::move(executor)),
      router_(router),
      settings_(std::move(settings)),
      acceptor_(executor_) {
    const std::string& path = settings_.path;
    prepare_path(executor_, path);

    std::optional<gid_t> group;
    if (settings_.group) {
        struct group* entry = getgrnam(settings_.group->c_str());
        if (entry == nullptr) {
            throw socket_error(path, "group " + *settings_.group + " does not exist");
        }
        group = entry->gr_gid;
    }

    // Created owner-only, then opened up to the configured mode, so it is
    // never reachable by more users than configured.
    acceptor_.open();
    mode_t old_mask = umask(0177);
    boost::system::error_code ec;
    acceptor_.bind(Protocol::endpoint(path), ec);
    umask(old_mask);
    if (ec) {
        throw socket_error(path, "cannot bind: " + ec.message());
    }
    if (group && chown(path.c_str(), static_cast<uid_t>(-1), *group) != 0) {
        throw socket_error(path, std::string("cannot set its group: ") + std::strerror(errno));
    }
    if (chmod(path.c_str(), settings_.mode) != 0) {
        throw socket_error(path, std::string("cannot set its mode: ") + std::strerror(errno));
    }
    acceptor_.listen(SOMAXCONN);

    struct stat info {};
    if (stat(path.c_str(), &info) == 0) {
        socket_dev_ = info.st_dev;
        socket_ino_ = info.st_ino;
    }
}

LocalServer::~LocalServer() {
    remove_socket_file();
}

void LocalServer::start() {
    spdlog::info("listening on {}", settings_.path);
    asio::co_spawn(executor_, accept_loop(), log_escape("the listener"));
}

void LocalServer::stop() {
    stopping_ = true;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    sweep_timer_.cancel();
    for (auto* connection : connections_) {
        if (connection->waiting()) {
            connection->socket.close(ignored);
        }
    }
    remove_socket_file();
}

void LocalServer::remove_socket_file() {
    if (socket_ino_ == 0) {
        return;
    }
    struct stat info {};
    if (stat(settings_.path.c_str(), &info) == 0 && info.st_dev == socket_dev_ &&
        info.st_ino == socket_ino_) {
        unlink(settings_.path.c_str());
    }
    socket_ino_ = 0;
}

asio::awaitable<void> LocalServer::accept_loop() {
    while (!stopping_) {
        auto [ec, socket] = co_await acceptor_.async_accept(as_tuple(use_awaitable));
        if (ec == asio::error::operation_aborted || stopping_) {
            break;
        }
        if (ec) {
            // Out of descriptors, mostly: say so and keep serving the others.
            spdlog::warn("accept failed: {}", ec.message());
            continue;
        }
        asio::co_spawn(executor_, session(std::move(socket)), log_escape("a client connection"));
    }
}

asio::awaitable<void> LocalServer::session(Socket socket) {
    Connection connection{std::move(socket)};
    Peer peer = peer_of(connection.socket);
    auto position = connections_.insert(connections_.end(), &connection);
    if (!sweeping_) {
        sweeping_ = true;
        asio::co_spawn(executor_, close_idle_connections(), log_escape("the idle sweep"));
    }

    // Kept for the whole connection, so that once they have grown to fit,
    // a request allocates nothing here.
    beast::flat_buffer buffer;
    RequestHead head;

    while (!stopping_) {
        RequestHeadParser parser(head);
        parser.header_limit(max_request_header);
        parser.body_limit(max_request_body);

        connection.deadline = Clock::now() + idle_connection_timeout;
        auto [read_ec, bytes] =
            co_await http::async_read(connection.socket, buffer, parser, as_tuple(use_awaitable));
        connection.deadline = Connection::busy;
        if (read_ec) {
            if (auto reply = refusal(read_ec)) {
                co_await send(connection.socket, render(std::move(*reply)), http_1_1, false);
            }
            break;
        }

        ++busy_;
        bool keep_alive = parser.keep_alive() && !stopping_;
        // Nearly every request is for a token that is there: its reply is
        // ready, rendered. Only the others go through the router's coroutine.
        auto reply = router_.answer_now(head.method, head.target, peer);
        if (!reply) {
            // A named request: GCC 12 miscompiles a braced temporary passed
            // to a coroutine (its strings end up pointing into this frame).
            LocalRequest request{head.method, head.target};
            LocalReply answered = co_await answer(std::move(request), peer);
            reply = std::make_shared<const RenderedReply>(render(std::move(answered)));
        }
        bool sent = co_await send(connection.socket, *reply, head.version, keep_alive);
        --busy_;
        if (!sent || !keep_alive) {
            break;
        }
    }

    connections_.erase(position);
    if (connections_.empty()) {
        sweep_timer_.cancel(); // nothing left to sweep: the sweep ends now
    }
    boost::system::error_code ignored;
    connection.socket.shutdown(Protocol::socket::shutdown_send, ignored);
}

asio::awaitable<LocalReply> LocalServer::answer(LocalRequest request, Peer peer) {
    std::string target = request.target;
    try {
        co_return co_await router_.handle(std::move(request), std::move(peer));
    } catch (const std::exception& e) {
        spdlog::error("internal error answering {}: {}", target, e.what());
    }
    co_return Router::error(500, "internal_error", "internal error");
}

// Runs while there are connections, so that a daemon with no client has no
// timer armed and makes no system call at all.
asio::awaitable<void> LocalServer::close_idle_connections() {
    while (!connections_.empty() && !stopping_) {
        sweep_timer_.expires_after(idle_sweep_interval);
        co_await sweep_timer_.async_wait(as_tuple(use_awaitable));
        auto now = Clock::now();
        for (auto* connection : connections_) {
            if (now >= connection->deadline) {
                boost::system::error_code ignored;
                connection->socket.close(ignored); // ends the read it waits in
            }
        }
    }
    sweeping_ = false;
}

} // namespace iam_tokend
