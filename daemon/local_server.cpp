#include "local_server.hpp"

#include "metrics.hpp"
#include "spawn.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <vector>

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
using namespace asio::experimental::awaitable_operators;
using Protocol = asio::local::stream_protocol;

namespace {

// Room for this many supplementary groups at the first try; more take a
// second call.
constexpr std::size_t expected_peer_groups = 32;

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

// The peer's supplementary groups, so that allow.gids also admits a member
// of an allowed group whose primary group is another one.
std::vector<gid_t> peer_groups(int fd) {
    std::vector<gid_t> groups(expected_peer_groups);
    auto length = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &length) != 0) {
        // ERANGE: more groups than expected, and `length` says how many.
        if (errno != ERANGE) {
            return {};
        }
        groups.resize(length / sizeof(gid_t));
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &length) != 0) {
            return {};
        }
    }
    groups.resize(length / sizeof(gid_t));
    return groups;
}

// Credentials the kernel recorded when the peer connected. When they cannot
// be read, the peer keeps Peer's "unknown" ids, which no allow list admits.
Peer peer_of(Protocol::socket& socket) {
    int fd = socket.native_handle();
    ucred credentials{};
    socklen_t length = sizeof credentials;
    Peer peer;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) {
        spdlog::warn("cannot read a client's credentials: {}", std::strerror(errno));
        return peer;
    }
    peer.pid = credentials.pid;
    peer.uid = credentials.uid;
    peer.gid = credentials.gid;
    peer.groups = peer_groups(fd);
    return peer;
}

http::response<http::string_body> to_response(LocalReply reply, unsigned version, bool keep_alive) {
    http::response<http::string_body> response{static_cast<http::status>(reply.status), version};
    response.set(http::field::server, "iam-tokend");
    response.set(http::field::content_type, reply.content_type);
    for (auto& [name, value] : reply.headers) {
        response.set(name, value);
    }
    response.body() = std::move(reply.body);
    response.keep_alive(keep_alive);
    response.prepare_payload();
    return response;
}

} // namespace

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

LocalServer::LocalServer(asio::any_io_executor executor,
                         Router& router,
                         SocketSettings settings,
                         int listening_fd)
    : executor_(std::move(executor)),
      router_(router),
      settings_(std::move(settings)),
      acceptor_(executor_, Protocol(), listening_fd),
      from_systemd_(true) {
    // The path the socket unit bound is the one clients use.
    boost::system::error_code ec;
    std::string bound = acceptor_.local_endpoint(ec).path();
    if (!ec && !bound.empty() && bound != settings_.path) {
        spdlog::warn("serving on {}, the socket systemd passed; socket.path {} is not used",
                     bound,
                     settings_.path);
        settings_.path = bound;
    }
}

LocalServer::~LocalServer() {
    remove_socket_file();
}

void LocalServer::start() {
    spdlog::info("listening on {}{}", settings_.path, from_systemd_ ? " (passed by systemd)" : "");
    asio::co_spawn(executor_, accept_loop(), log_escape("the listener"));
}

void LocalServer::stop() {
    stopping_ = true;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    for (auto* socket : idle_) {
        socket->close(ignored);
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
    Peer peer = peer_of(socket);
    OpenConnection counted(metrics_);
    beast::flat_buffer buffer;
    boost::system::error_code ec;

    while (!stopping_) {
        http::request_parser<http::string_body> parser;
        parser.header_limit(max_request_header);
        parser.body_limit(max_request_body);

        // Waiting for a request (and reading it) is bounded by one timer.
        asio::steady_timer idle(executor_, idle_connection_timeout);
        auto position = idle_.insert(idle_.end(), &socket);
        auto outcome =
            co_await (http::async_read(socket, buffer, parser, as_tuple(use_awaitable)) ||
                      idle.async_wait(use_awaitable));
        idle_.erase(position);
        if (outcome.index() == 1) {
            break;
        }
        auto [read_ec, bytes] = std::get<0>(outcome);

        if (read_ec) {
            LocalReply reply;
            if (read_ec == http::error::header_limit) {
                reply = Router::error(431, "headers_too_large", "request headers are too large");
            } else if (read_ec == http::error::body_limit) {
                reply = Router::error(413, "body_too_large", "request body is too large");
            } else if (read_ec.category() == make_error_code(http::error::bad_method).category() &&
                       read_ec != http::error::end_of_stream &&
                       read_ec != http::error::partial_message) {
                reply = Router::error(400, "bad_request", "malformed HTTP request");
            } else {
                break; // the client went away, or the connection timed out
            }
            if (metrics_ != nullptr) {
                metrics_->count_request(Route::unparsed, reply.status);
            }
            co_await http::async_write(socket,
                                       to_response(std::move(reply), 11, false),
                                       as_tuple(use_awaitable));
            break;
        }

        ++busy_;
        auto request = parser.release();
        bool keep_alive = request.keep_alive();
        LocalRequest local{std::string(request.method_string()), std::string(request.target())};
        LocalReply reply;
        try {
            reply = co_await router_.handle(std::move(local), peer);
        } catch (const std::exception& e) {
            spdlog::error("internal error answering {}: {}", request.target(), e.what());
            reply = Router::error(500, "internal_error", "internal error");
        }
        if (metrics_ != nullptr) {
            metrics_->count_request(route_of(request.target()), reply.status);
        }
        auto response = to_response(std::move(reply), request.version(), keep_alive && !stopping_);
        auto [write_ec, written] =
            co_await http::async_write(socket, response, as_tuple(use_awaitable));
        --busy_;
        if (write_ec || !response.keep_alive()) {
            break;
        }
    }
    socket.shutdown(Protocol::socket::shutdown_send, ec);
}

} // namespace iam_tokend
