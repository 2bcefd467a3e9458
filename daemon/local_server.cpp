#include "local_server.hpp"

#include "local_client.hpp"
#include "metrics.hpp"
#include "spawn.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <vector>

#include <grp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace iam_tokend {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::as_tuple;
using asio::use_awaitable;
using Protocol = asio::local::stream_protocol;
using Clock = std::chrono::steady_clock;

namespace {

// One read from a client asks for this much room at most: room for any
// usual request, and, held by every connection that waits for its next
// one, what most of an idle connection's memory is.
constexpr std::size_t read_chunk = 1024;
// Closing a Unix socket that holds unread data resets it, and the client
// may lose the reply sent just before. So before the server closes a
// connection after a reply, it reads and drops what the client still sends,
// up to these bounds.
constexpr std::size_t linger_max_bytes = 64 * 1024;
constexpr std::chrono::milliseconds linger_timeout{1000};
// How long the start-up probe of an existing socket waits for an answer.
constexpr std::chrono::milliseconds probe_timeout{2000};
// Room for this many supplementary groups at the first try; more take a
// second call.
constexpr std::size_t expected_peer_groups = 32;

std::runtime_error socket_error(const std::string& path, const std::string& what) {
    return std::runtime_error("socket " + path + ": " + what);
}

std::chrono::steady_clock::duration to_steady(Seconds seconds) {
    return std::chrono::duration_cast<std::chrono::steady_clock::duration>(seconds);
}

// What lstat() found at a path where a socket should be, in words.
std::string what_is_at(const std::string& path, const struct stat& info) {
    if (S_ISREG(info.st_mode)) {
        return "a regular file";
    }
    if (S_ISDIR(info.st_mode)) {
        return "a directory";
    }
    if (S_ISLNK(info.st_mode)) {
        std::error_code ec;
        auto target = std::filesystem::read_symlink(path, ec);
        return ec ? "a symbolic link" : "a symbolic link to " + target.string();
    }
    if (S_ISFIFO(info.st_mode)) {
        return "a named pipe";
    }
    return "a device file";
}

// connect() to the socket at `path` without waiting: 0 when someone
// accepts, else the errno (ECONNREFUSED when nobody listens, EAGAIN when a
// live listener's queue is full).
int try_connect(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return errno;
    }
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
    int result = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
    int error = result == 0 ? 0 : errno;
    ::close(fd);
    return error;
}

// Someone accepts connections on the socket: find out with a real request
// whether it is an iam-tokend, for the message.
std::string describe_listener(const std::string& path) {
    auto reply = local_request(path, "GET", "/v1/health", probe_timeout);
    if (!reply.error.empty()) {
        return "a process accepts connections on it but did not answer GET /v1/health (" +
               reply.error + ")";
    }
    return "a server answers on it (GET /v1/health: HTTP " + std::to_string(reply.status) +
           "), probably another iam-tokend";
}

// Makes way for the socket: creates its folder, removes a stale socket file
// nobody listens on, and refuses anything else found at the path.
void prepare_path(const std::string& path) {
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
        if (errno == ENOENT) {
            return;
        }
        throw socket_error(path, std::string("cannot inspect the path: ") + std::strerror(errno));
    }
    if (!S_ISSOCK(info.st_mode)) {
        throw socket_error(path,
                           "there is " + what_is_at(path, info) +
                               " at this path, not a socket; not replacing it");
    }

    int error = try_connect(path);
    if (error == 0) {
        throw socket_error(path, describe_listener(path) + "; not taking it over");
    }
    if (error == EAGAIN) {
        throw socket_error(path, "a live server's queue on it is full; not taking it over");
    }
    if (error != ECONNREFUSED) {
        throw socket_error(path,
                           std::string("cannot tell whether it is in use: ") +
                               std::strerror(error) + "; not replacing it");
    }
    spdlog::info("removing stale socket {} (nothing listens on it)", path);
    if (unlink(path.c_str()) != 0) {
        throw socket_error(path,
                           std::string("cannot remove the stale socket: ") + std::strerror(errno));
    }
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

std::string_view as_view(const beast::flat_buffer& buffer) {
    auto bytes = buffer.data();
    return {static_cast<const char*>(bytes.data()), bytes.size()};
}

} // namespace

std::size_t connection_limit() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) {
        return max_connections;
    }
    auto descriptors = static_cast<std::size_t>(limit.rlim_cur);
    std::size_t usable = std::max(descriptors / 2, descriptors - reserved_descriptors);
    return std::clamp<std::size_t>(usable, 1, max_connections);
}

// A client connection as the server sees it.
//
// Every step of a connection has a deadline (the first byte of a request,
// the rest of it, a reply the client must take, the linger before closing),
// and one watchdog per connection enforces them all (see watchdog()). A step
// moves the deadline with expect_by(), which costs nothing in the usual case
// of a deadline later than the last: the watchdog's timer is left alone, and
// when it goes off it sees the later deadline and sleeps again. Only a
// deadline brought forward wakes the watchdog to re-arm. So a request that
// arrives whole and a reply that goes at once touch no timer at all.
struct LocalServer::Connection {
    static constexpr Clock::time_point never = Clock::time_point::max();

    explicit Connection(Socket client)
        : socket(std::move(client)),
          timer(socket.get_executor()),
          buffer(max_request_header + read_chunk) {}

    void expect_by(Clock::time_point when, const char* missed) {
        deadline = when;
        what_is_late = missed;
        if (when < timer.expiry()) {
            timer.cancel(); // the watchdog re-arms for the earlier deadline
        }
    }

    Socket socket;
    asio::steady_timer timer; // the watchdog's alarm
    Clock::time_point deadline = never;
    const char* what_is_late = ""; // for the log, when the deadline is missed
    bool ended = false;            // the session is over; the watchdog stops
    beast::flat_buffer buffer;     // bytes received and not parsed yet
    RequestReader reader;          // reset for each request, keeping its room
    Peer peer;
    bool waiting = false;
    // The connection's entry in waiting_, moved in and out by splicing so
    // that waiting for a request allocates nothing.
    std::list<Connection*> waiting_entry{this};
    std::list<Connection*>::iterator waiting_at;
    Clock::time_point waiting_since;
};

LocalServer::LocalServer(asio::any_io_executor executor, Router& router, SocketSettings settings)
    : executor_(std::move(executor)),
      router_(router),
      settings_(std::move(settings)),
      acceptor_(executor_) {
    const std::string& path = settings_.path;
    prepare_path(path);

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
    if (limit_ < max_connections) {
        spdlog::warn("the open-file limit allows only {} connections at once", limit_);
    }
    asio::co_spawn(executor_, accept_loop(), log_escape("the listener"));
}

void LocalServer::stop() {
    stopping_ = true;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    room_.cancel();
    accept_pause_.cancel();
    while (!waiting_.empty()) {
        evict(*waiting_.front());
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
    auto pause = accept_pause_initial;
    bool failing = false;
    while (!stopping_) {
        if (open_ >= limit_) {
            co_await make_room();
            continue;
        }
        // Said once, until the connections have come down to half the limit.
        if (open_ <= limit_ / 2) {
            limit_reached_ = false;
        }

        auto [ec, socket] = co_await acceptor_.async_accept(as_tuple(use_awaitable));
        if (stopping_ || ec == asio::error::operation_aborted) {
            break;
        }
        if (!ec) {
            if (failing) {
                spdlog::info("accepting connections again");
            }
            failing = false;
            pause = accept_pause_initial;
            asio::co_spawn(executor_,
                           session(std::move(socket)),
                           log_escape("a client connection"));
            continue;
        }
        if (ec == asio::error::connection_aborted) {
            continue; // the client gave up while it was queued
        }

        // Mostly out of descriptors (EMFILE, ENFILE) or memory. The client
        // stays queued, so accepting again at once would fail again at once:
        // free a descriptor, or else pause.
        if (!failing) {
            spdlog::warn("accept failed: {} ({} connections open); closing connections that "
                         "wait for a request, or pausing",
                         ec.message(),
                         open_);
        }
        failing = true;
        if (Connection* longest = evictable()) {
            evict(*longest);
            continue;
        }
        accept_pause_.expires_after(pause);
        co_await accept_pause_.async_wait(as_tuple(use_awaitable));
        pause = std::min(pause * 2, accept_pause_max);
    }
}

// At the limit: close the connection that has waited longest for a request
// if it has waited long enough, then wait until some connection has ended.
asio::awaitable<void> LocalServer::make_room() {
    if (!limit_reached_) {
        limit_reached_ = true;
        spdlog::warn("{} connections open, the limit; closing those that wait longest for a "
                     "request to let new ones in",
                     open_);
    }

    auto wake = std::chrono::steady_clock::time_point::max();
    if (Connection* longest = evictable()) {
        evict(*longest);
    } else if (!waiting_.empty()) {
        wake = waiting_.front()->waiting_since + min_wait_before_eviction;
    }
    room_.expires_at(wake);
    co_await room_.async_wait(as_tuple(use_awaitable));
}

LocalServer::Connection* LocalServer::evictable() const {
    if (waiting_.empty()) {
        return nullptr;
    }
    Connection* longest = waiting_.front();
    auto waited = std::chrono::steady_clock::now() - longest->waiting_since;
    return waited >= min_wait_before_eviction ? longest : nullptr;
}

void LocalServer::start_waiting(Connection& connection) {
    connection.waiting = true;
    connection.waiting_since = Clock::now();
    connection.waiting_at = connection.waiting_entry.begin();
    waiting_.splice(waiting_.end(), connection.waiting_entry);
}

void LocalServer::stop_waiting(Connection& connection) {
    if (connection.waiting) {
        connection.waiting_entry.splice(connection.waiting_entry.end(),
                                        waiting_,
                                        connection.waiting_at);
        connection.waiting = false;
    }
}

// Closing the socket ends the read the connection is waiting in.
void LocalServer::evict(Connection& connection) {
    stop_waiting(connection);
    boost::system::error_code ignored;
    connection.socket.close(ignored);
}

asio::awaitable<void> LocalServer::session(Socket socket) {
    // Shared with the watchdog, which may outlive this coroutine briefly.
    auto shared = std::make_shared<Connection>(std::move(socket));
    Connection& connection = *shared;
    connection.peer = peer_of(connection.socket);
    // Synchronous writes return at once instead of blocking (see send()).
    boost::system::error_code ec;
    connection.socket.non_blocking(true, ec);
    OpenConnection counted(metrics_);
    ++open_;
    asio::co_spawn(executor_, watchdog(shared), log_escape("a connection's watchdog"));
    try {
        co_await serve(connection);
    } catch (const std::exception& e) {
        spdlog::error("a client connection failed: {}", e.what());
    }

    connection.ended = true;
    connection.timer.cancel();
    stop_waiting(connection);
    boost::system::error_code ignored;
    connection.socket.shutdown(Protocol::socket::shutdown_send, ignored);
    connection.socket.close(ignored);
    --open_;
    room_.cancel();
}

// Closes the connection when it misses its deadline, which ends the read or
// write serve() waits in; returns quietly once the session has ended.
asio::awaitable<void> LocalServer::watchdog(std::shared_ptr<Connection> connection) {
    while (!connection->ended) {
        connection->timer.expires_at(connection->deadline);
        co_await connection->timer.async_wait(as_tuple(use_awaitable));
        if (!connection->ended && Clock::now() >= connection->deadline) {
            spdlog::debug("closing a client connection: {}", connection->what_is_late);
            boost::system::error_code ignored;
            connection->socket.close(ignored);
            co_return;
        }
    }
}

// Request after request until the client closes, times out, or asks to close.
asio::awaitable<void> LocalServer::serve(Connection& connection) {
    // A new client owes its request at once; between requests it may idle.
    auto first_byte_within = to_steady(settings_.request_timeout);
    RequestReader& reader = connection.reader;

    while (!stopping_) {
        reader.reset();
        Received received = co_await receive(connection, reader, first_byte_within);
        if (received == Received::nothing) {
            co_return;
        }
        if (received == Received::malformed) {
            RenderedReply refusal = render(reader.refusal());
            count_request(Route::unparsed, refusal.status);
            if (co_await send(connection, refusal, reader.version(), false)) {
                co_await linger(connection);
            }
            co_return;
        }

        // Answering has no deadline of its own: a client may wait for a token.
        connection.expect_by(Connection::never, "");
        ++busy_;
        // Nearly every request is for a token that is there: its reply is
        // ready, rendered. Only the others go through the router's coroutine.
        auto reply = router_.answer_now(reader.method(), reader.target(), connection.peer);
        Route route = Route::unparsed;
        if (reply) {
            route = route_of(reader.target());
        } else {
            LocalRequest request = reader.request();
            route = route_of(request.target);
            LocalReply answered = co_await answer(std::move(request), connection.peer);
            reply = std::make_shared<const RenderedReply>(render(std::move(answered)));
        }
        count_request(route, reply->status);
        bool keep_alive = reader.keep_alive() && !stopping_;
        bool sent = co_await send(connection, *reply, reader.version(), keep_alive);
        --busy_;
        if (!sent) {
            co_return;
        }
        if (!keep_alive) {
            co_await linger(connection);
            co_return;
        }
        first_byte_within = to_steady(settings_.idle_timeout);
    }
}

// Reads until `reader` holds a whole request or has refused one. The first
// byte may take `first_byte_within`; from then on the rest of the request
// gets request_timeout. Bytes of a pipelined next request stay buffered.
asio::awaitable<LocalServer::Received>
LocalServer::receive(Connection& connection,
                     RequestReader& reader,
                     std::chrono::steady_clock::duration first_byte_within) {
    constexpr const char* late = "no complete request in time";
    auto& buffer = connection.buffer;
    auto request_timeout = to_steady(settings_.request_timeout);
    // Bytes already here have started the request.
    bool started = buffer.size() > 0;
    connection.expect_by(Clock::now() + (started ? request_timeout : first_byte_within), late);
    Clock::time_point first_byte_at;
    start_waiting(connection);

    for (;;) {
        if (buffer.size() > 0) {
            buffer.consume(reader.feed(as_view(buffer)));
            if (reader.state() != RequestReader::State::reading) {
                break;
            }
            // A request that did not arrive whole: the rest is due within
            // request_timeout of its first byte.
            if (!started) {
                started = true;
                connection.expect_by(first_byte_at + request_timeout, late);
            }
        }
        // The reader refuses a header before it could fill the buffer.
        std::size_t room = std::min(read_chunk, buffer.max_size() - buffer.size());
        if (room == 0) {
            stop_waiting(connection);
            co_return Received::nothing;
        }

        auto [ec, bytes] = co_await connection.socket.async_read_some(buffer.prepare(room),
                                                                      as_tuple(use_awaitable));
        if (ec) {
            // Closed, reset, evicted, late, or the server is stopping.
            spdlog::debug("closing a client connection: {}", ec.message());
            stop_waiting(connection);
            co_return Received::nothing;
        }
        if (buffer.size() == 0) {
            first_byte_at = Clock::now();
        }
        buffer.commit(bytes);
    }

    stop_waiting(connection);
    co_return reader.state() == RequestReader::State::complete ? Received::request
                                                               : Received::malformed;
}

// Writes a reply with one gathered write. Nearly always it fits in the
// socket's buffer and goes at once, with no timer involved; a client that
// does not read gets request_timeout to take the rest. False when the reply
// could not be written whole.
asio::awaitable<bool> LocalServer::send(Connection& connection,
                                        const RenderedReply& reply,
                                        unsigned request_version,
                                        bool keep_alive) {
    auto buffers = wire_buffers(reply, request_version, keep_alive);
    boost::system::error_code ec;
    std::size_t written = asio::write(connection.socket, buffers, ec);
    if (ec != asio::error::would_block) {
        co_return !ec;
    }

    connection.expect_by(Clock::now() + to_steady(settings_.request_timeout),
                         "it did not take its reply in time");
    beast::buffers_suffix rest(buffers);
    rest.consume(written);
    auto [write_ec, more] =
        co_await asio::async_write(connection.socket, rest, as_tuple(use_awaitable));
    co_return !write_ec;
}

// Ends the connection after a reply: says so to the client, then drops
// what it still sends until it closes its side (within the linger bounds).
// Only bytes still unread when the socket closes reset it, so with none
// waiting (the usual case) the connection is closed at once.
asio::awaitable<void> LocalServer::linger(Connection& connection) {
    boost::system::error_code ignored;
    if (connection.socket.available(ignored) == 0 && !ignored) {
        co_return;
    }
    connection.socket.shutdown(Protocol::socket::shutdown_send, ignored);
    connection.buffer.clear();
    connection.expect_by(Clock::now() + linger_timeout, "it did not close after its reply");

    std::size_t dropped = 0;
    while (dropped < linger_max_bytes) {
        auto [ec, bytes] =
            co_await connection.socket.async_read_some(connection.buffer.prepare(read_chunk),
                                                       as_tuple(use_awaitable));
        if (ec) {
            co_return; // end of stream: the client has closed its side
        }
        dropped += bytes;
    }
}

void LocalServer::count_request(Route route, unsigned status) {
    if (metrics_ != nullptr) {
        metrics_->count_request(route, status);
    }
}

asio::awaitable<LocalReply> LocalServer::answer(LocalRequest request, Peer peer) {
    std::string target = request.target;
    try {
        co_return co_await router_.handle(std::move(request), peer);
    } catch (const std::exception& e) {
        spdlog::error("internal error answering {}: {}", target, e.what());
    }
    co_return Router::error(500, "internal_error", "internal error");
}

} // namespace iam_tokend
