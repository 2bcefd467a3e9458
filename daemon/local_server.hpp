// HTTP/1.1 over the Unix socket: the listener, one coroutine per
// connection, keep-alive, and a clean stop.
//
// The socket file is created with the configured mode and group (its folder
// with 0755 when missing). A stale file left by a crash is replaced, but a
// socket that another live daemon answers on is never taken over. On stop
// the file is removed only if it is still the one this server created.
// A socket passed by systemd is served as it is: its mode, group and file
// are the socket unit's business.
#pragma once

#include "config.hpp"
#include "routes.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include <chrono>
#include <cstddef>
#include <list>
#include <string>

#include <sys/types.h>

namespace iam_tokend {

inline constexpr std::size_t max_request_header = 8 * 1024;
inline constexpr std::size_t max_request_body = 4 * 1024;
// A keep-alive connection with no request for this long is closed.
inline constexpr std::chrono::seconds idle_connection_timeout{60};

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

private:
    using Socket = boost::asio::local::stream_protocol::socket;

    boost::asio::awaitable<void> accept_loop();
    boost::asio::awaitable<void> session(Socket socket);
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
    std::list<Socket*> idle_; // connections waiting for their next request
};

} // namespace iam_tokend
