// Telling systemd the truth about the daemon's state, and taking the
// listening socket it passes (DESIGN §1, §4). Every libsystemd call of the
// daemon is in systemd.cpp.
//
// Outside systemd all of this is inert: sd_notify() does nothing without
// NOTIFY_SOCKET, the watchdog runs only when WATCHDOG_USEC asks for it, and
// without LISTEN_FDS the daemon creates its own socket.
//
// The notifier lives on the daemon's one io_context thread. Its watchdog
// pings come from a timer on that loop, so a loop that hangs stops them and
// systemd restarts the service.
#pragma once

#include "config.hpp"
#include "routes.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <string_view>

namespace iam_tokend {

// The listening socket that systemd passed (LISTEN_FDS), or nothing when it
// passed none. Throws std::runtime_error when it passed more than one, or
// one that is not a listening Unix stream socket.
std::optional<int> socket_from_systemd();

class SystemdNotifier {
public:
    // `profiles` is the daemon's, replaced whole on reload; it must outlive
    // the notifier.
    SystemdNotifier(boost::asio::any_io_executor executor,
                    const Profiles& profiles,
                    Seconds startup_timeout);

    // Once the socket listens and the sources run: READY=1 as soon as every
    // profile holds a token, or when the startup timeout passes; STATUS=
    // from then on; watchdog pings if systemd asked for them.
    void start();

    // Around a SIGHUP reload: RELOADING=1, then READY=1 with the status of
    // the profiles now in force.
    void reloading() const;
    void reloaded();

    // STOPPING=1; no more pings or readiness after this.
    void stopping();

private:
    void watch_sources();
    void on_change();
    void become_ready(std::string_view why);
    void send_status();
    std::string status_line() const;
    boost::asio::awaitable<void> watchdog_loop(std::chrono::microseconds period);

    boost::asio::any_io_executor executor_;
    const Profiles& profiles_;
    Seconds startup_timeout_;
    boost::asio::steady_timer startup_timer_;
    boost::asio::steady_timer watchdog_timer_;
    // The sources already reporting to us, so a reload that keeps a source
    // does not add a second listener to it. Holds only sources in profiles_.
    std::set<const TokenSource*> watched_;
    std::string status_prefix_;
    std::string last_status_;
    bool ready_ = false;
    bool stopping_ = false;
};

} // namespace iam_tokend
