// The running service: config, token sources, the local server and the
// signals that steer them.
//
// Threading: the whole daemon runs on one io_context driven by one thread
// (the caller of run()). Every coroutine, timer and handler shares it, so no
// state here or in the token sources needs a lock.
#pragma once

#include "config.hpp"
#include "local_server.hpp"
#include "metrics.hpp"
#include "routes.hpp"
#include "systemd.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace iam_tokend {

// How long a stop waits for replies under way before it ends the loop.
inline constexpr std::chrono::seconds stop_grace{5};
// A reload starts this long after the SIGHUP that asks for it; further
// SIGHUPs until then are served by the same reload.
inline constexpr std::chrono::milliseconds reload_delay{200};

// Each profile whose secret cannot be loaded, as check-config reports it:
// `profiles.NAME.KEY: what is wrong`.
std::vector<std::string> secret_problems(const Config& config);

class Daemon {
public:
    // Loads every secret and opens the socket; throws std::runtime_error
    // with an operator-facing message when that is not possible.
    Daemon(std::string config_path, Config config);

    // Serves until SIGTERM or SIGINT; returns the process exit code.
    int run();

private:
    void wait_for_signal();
    void on_signal(int number);
    void schedule_reload();
    void reload();
    void begin_stop();
    void finish_stop_when_idle();
    Profiles make_profiles(const Config& config, const Profiles* current);
    void attach_outputs(TokenSource& source);

    // Declared before io_ so that it outlives every coroutine frame io_
    // destroys: connections report their end to it.
    Metrics metrics_;
    boost::asio::io_context io_{1}; // the hint: one thread runs it
    std::string config_path_;
    Config config_;
    // Fixed at start: where tokens are saved (none when unset or unusable).
    std::optional<std::string> state_dir_;
    Profiles profiles_;
    Router router_;
    std::unique_ptr<LocalServer> server_;
    boost::asio::signal_set signals_;
    boost::asio::steady_timer stop_timer_;
    SystemdNotifier systemd_;
    boost::asio::steady_timer reload_timer_;
    bool reload_scheduled_ = false;
    std::chrono::steady_clock::time_point stop_deadline_{};
    bool stopping_ = false;
};

} // namespace iam_tokend
