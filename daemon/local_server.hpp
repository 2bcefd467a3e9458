// HTTP/1.1 over the Unix socket: the listener, one coroutine per
// connection, keep-alive, and a clean stop.
//
// The socket file is created with the configured mode and group (its folder
// with 0755 when missing). A stale file left by a crash is replaced, but a
// socket that another live daemon answers on is never taken over, and
// anything else at the path (a file, a folder, a symbolic link) is left
// alone with an error. On stop the file is removed only if it is still the
// one this server created. A socket passed by systemd is served as it is:
// its mode, group and file are the socket unit's business.
//
// Clients that misbehave cannot hold the server. A new connection must send
// a whole request within socket.request_timeout_s, a kept-alive one must
// start its next request within socket.idle_timeout_s and then finish it
// within request_timeout_s, and a reply not taken within request_timeout_s
// closes the connection. At most connection_limit() connections are open at
// once; when a new one arrives at the limit, the connection that has waited
// longest for a request is closed, once it has waited min_wait_before_eviction
// (before that, and when every connection is busy with a reply, new ones
// wait in the listen queue). When accept() fails for want of descriptors
// the listener closes such a connection too, or, when there is none, pauses
// (doubling the pause while the shortage lasts) instead of retrying the
// queued connection in a tight loop.
#pragma once

#include "config.hpp"
#include "local_http.hpp"
#include "metrics.hpp"
#include "routes.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstddef>
#include <list>
#include <memory>
#include <string>

#include <sys/types.h>

namespace iam_tokend {

// The most connections served at once. Fewer when the open-file limit is
// low: connection_limit() leaves reserved_descriptors of it (half of it,
// below 64) to IAM connections, files and the daemon's own needs.
inline constexpr std::size_t max_connections = 1024;
inline constexpr std::size_t reserved_descriptors = 32;
// A connection waiting for a request is closed to make room for a new one
// only after it has waited this long, so a burst of clients that send their
// requests at once is queued rather than cut off.
inline constexpr std::chrono::milliseconds min_wait_before_eviction{50};
// The pause after accept() fails for want of descriptors or memory, doubled
// while the failures go on.
inline constexpr std::chrono::milliseconds accept_pause_initial{50};
inline constexpr std::chrono::milliseconds accept_pause_max{1000};

// How many connections may be open at once with the current open-file limit.
std::size_t connection_limit();

class LocalServer {
public:
    // Creates, binds and listens; throws std::runtime_error with a message
    // for the operator when the socket cannot be set up.
    LocalServer(boost::asio::any_io_executor executor, Router& router, SocketSettings settings);
    // Serves on a listening socket that systemd passed (socket activation).
    // The socket file belongs to the socket unit and is left alone.
    LocalServer(boost::asio::any_io_executor executor,
                Router& router,
                SocketSettings settings,
                int listening_fd);
    ~LocalServer();
    LocalServer(const LocalServer&) = delete;
    LocalServer& operator=(const LocalServer&) = delete;

    void start();
    // Stops accepting, closes idle connections, lets replies under way
    // finish, and removes the socket file.
    void stop();
    // Connections still busy with a request.
    std::size_t busy() const { return busy_; }
    // Counts connections and replies into `metrics`, which must outlive the
    // server.
    void set_metrics(Metrics* metrics) { metrics_ = metrics; }
    const SocketSettings& settings() const { return settings_; }

    // Connections open right now.
    std::size_t open() const { return open_; }

private:
    using Socket = boost::asio::local::stream_protocol::socket;
    struct Connection;
    enum class Received { request, malformed, nothing };

    boost::asio::awaitable<void> accept_loop();
    boost::asio::awaitable<void> make_room();
    boost::asio::awaitable<void> session(Socket socket);
    boost::asio::awaitable<void> serve(Connection& connection);
    boost::asio::awaitable<void> watchdog(std::shared_ptr<Connection> connection);
    boost::asio::awaitable<Received> receive(Connection& connection,
                                             RequestReader& reader,
                                             std::chrono::steady_clock::duration first_byte_within);
    boost::asio::awaitable<bool> send(Connection& connection,
                                      const RenderedReply& reply,
                                      unsigned request_version,
                                      bool keep_alive);
    boost::asio::awaitable<void> linger(Connection& connection);
    boost::asio::awaitable<LocalReply> answer(LocalRequest request, Peer peer);
    void count_request(Route route, unsigned status);
    void start_waiting(Connection& connection);
    void stop_waiting(Connection& connection);
    Connection* evictable() const;
    void evict(Connection& connection);
    void remove_socket_file();

    boost::asio::any_io_executor executor_;
    Router& router_;
    Metrics* metrics_ = nullptr;
    SocketSettings settings_;
    boost::asio::local::stream_protocol::acceptor acceptor_;
    dev_t socket_dev_ = 0;
    ino_t socket_ino_ = 0;
    bool stopping_ = false;
    bool from_systemd_ = false;
    std::size_t busy_ = 0;
    std::size_t open_ = 0;
    std::size_t limit_ = connection_limit();
    bool limit_reached_ = false;
    // Connections waiting for (the rest of) a request, longest waiting first.
    std::list<Connection*> waiting_;
    // The listener waits on it for room; a connection that ends cancels it.
    boost::asio::steady_timer room_{executor_};
    boost::asio::steady_timer accept_pause_{executor_};
};

} // namespace iam_tokend
