#include "systemd.hpp"

#include "spawn.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <ctime>
#include <stdexcept>

#include <sys/socket.h>

namespace iam_tokend {
namespace asio = boost::asio;
using asio::as_tuple;
using asio::use_awaitable;

namespace {

// Pings go out at this fraction of WATCHDOG_USEC, as sd_watchdog_enabled(3)
// recommends, so one late ping does not get the service killed.
constexpr std::uint64_t watchdog_divisor = 2;
constexpr std::chrono::microseconds min_watchdog_period{1000};

// Sends one notification; a failure to reach systemd is no reason to stop
// serving tokens, so it is only logged.
void notify(const std::string& message) {
    int result = sd_notify(0, message.c_str());
    if (result < 0) {
        spdlog::debug("sd_notify failed: error {}", -result);
    }
}

// A STATUS= value is one line of the notify message: any control character
// (a newline in an IAM error message, say) would start a new assignment.
std::string one_line(std::string text) {
    std::replace_if(
        text.begin(),
        text.end(),
        [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; },
        ' ');
    return text;
}

std::string utc_time(std::chrono::system_clock::time_point at) {
    std::time_t seconds = std::chrono::system_clock::to_time_t(at);
    std::tm parts{};
    gmtime_r(&seconds, &parts);
    std::array<char, 32> text{};
    std::size_t length = std::strftime(text.data(), text.size(), "%Y-%m-%d %H:%M:%S UTC", &parts);
    return {text.data(), length};
}

// "default: token ab12 expires 2025-01-02 12:34:56 UTC" or
// "default: no token (network: connection refused)".
std::string profile_status(const std::string& name, const TokenSource& source) {
    const auto& error = source.last_error();
    if (auto token = source.current()) {
        std::string line =
            name + ": token " + token->fingerprint + " expires " + utc_time(token->expiration);
        if (source.consecutive_failures() > 0 && error) {
            line += ", refresh failing (" + error->describe() + ")";
        }
        return line;
    }
    if (!error) {
        return name + ": no token yet";
    }
    return name + ": no token (" + std::string(to_string(error->kind)) + ": " + error->describe() +
           ")";
}

} // namespace

std::optional<int> socket_from_systemd() {
    // Clearing LISTEN_* keeps the descriptor from being taken a second time.
    int count = sd_listen_fds(1);
    if (count < 0) {
        throw std::runtime_error("cannot read the sockets passed by systemd: error " +
                                 std::to_string(-count));
    }
    if (count == 0) {
        return std::nullopt;
    }
    if (count > 1) {
        throw std::runtime_error("systemd passed " + std::to_string(count) +
                                 " sockets; iam-tokend serves on exactly one "
                                 "(one ListenStream= in the socket unit)");
    }

    int fd = SD_LISTEN_FDS_START;
    if (sd_is_socket_unix(fd, SOCK_STREAM, 1, nullptr, 0) <= 0) {
        throw std::runtime_error("the socket systemd passed is not a listening Unix stream "
                                 "socket (ListenStream= in the socket unit must be a path)");
    }
    return fd;
}

SystemdNotifier::SystemdNotifier(asio::any_io_executor executor,
                                 const Profiles& profiles,
                                 Seconds startup_timeout)
    : executor_(std::move(executor)),
      profiles_(profiles),
      startup_timeout_(startup_timeout),
      startup_timer_(executor_),
      watchdog_timer_(executor_) {}

void SystemdNotifier::start() {
    watch_sources();

    std::uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0) {
        auto period =
            std::max(std::chrono::microseconds(usec / watchdog_divisor), min_watchdog_period);
        spdlog::debug("systemd watchdog: pinging every {} ms",
                      std::chrono::duration_cast<std::chrono::milliseconds>(period).count());
        asio::co_spawn(executor_, watchdog_loop(period), log_escape("the systemd watchdog"));
    }

    // A dead IAM at boot must not fail the unit: after the timeout the
    // daemon is ready anyway, and its status says what is missing.
    startup_timer_.expires_after(
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(startup_timeout_));
    startup_timer_.async_wait([this](boost::system::error_code ec) {
        if (ec || ready_ || stopping_) {
            return;
        }
        spdlog::warn("not every profile has a token after startup_timeout_s ({} s); "
                     "telling systemd the service is ready anyway",
                     startup_timeout_.count());
        status_prefix_ = "startup timeout passed without a token for every profile; ";
        become_ready("startup timeout");
    });

    on_change();
}

void SystemdNotifier::watch_sources() {
    std::set<const TokenSource*> now_watched;
    for (const auto& [name, source] : profiles_.sources) {
        if (!watched_.contains(source.get())) {
            source->add_listener([this](const TokenSource&, SourceEvent) { on_change(); });
        }
        now_watched.insert(source.get());
    }
    watched_ = std::move(now_watched);
}

// Any token event: maybe time to say READY=1, and the status may have moved.
void SystemdNotifier::on_change() {
    if (stopping_) {
        return;
    }
    bool all_hold_a_token = std::ranges::all_of(profiles_.sources, [](const auto& entry) {
        return entry.second->current() != nullptr;
    });
    if (all_hold_a_token) {
        status_prefix_.clear();
    }
    if (all_hold_a_token && !ready_) {
        become_ready("every profile holds a token");
        return;
    }
    send_status();
}

void SystemdNotifier::become_ready(std::string_view why) {
    ready_ = true;
    startup_timer_.cancel();
    last_status_ = one_line(status_prefix_ + status_line());
    notify("READY=1\nSTATUS=" + last_status_);
    spdlog::debug("told systemd the service is ready ({})", why);
}

void SystemdNotifier::send_status() {
    std::string status = one_line(status_prefix_ + status_line());
    if (status == last_status_) {
        return;
    }
    last_status_ = std::move(status);
    notify("STATUS=" + last_status_);
}

std::string SystemdNotifier::status_line() const {
    std::string line;
    for (const auto& [name, source] : profiles_.sources) {
        if (!line.empty()) {
            line += "; ";
        }
        line += profile_status(name, *source);
    }
    return line;
}

void SystemdNotifier::reloading() const {
    if (!ready_ || stopping_) {
        return;
    }
    // systemd asks for the time of the reload next to RELOADING=1.
    auto now = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now().time_since_epoch());
    notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(now.count()));
}

void SystemdNotifier::reloaded() {
    if (stopping_) {
        return;
    }
    watch_sources();
    if (!ready_) {
        on_change();
        return;
    }
    status_prefix_.clear();
    become_ready("reloaded");
}

void SystemdNotifier::stopping() {
    if (stopping_) {
        return;
    }
    stopping_ = true;
    startup_timer_.cancel();
    watchdog_timer_.cancel();
    notify("STOPPING=1\nSTATUS=stopping");
}

asio::awaitable<void> SystemdNotifier::watchdog_loop(std::chrono::microseconds period) {
    while (!stopping_) {
        notify("WATCHDOG=1");
        watchdog_timer_.expires_after(period);
        auto [ec] = co_await watchdog_timer_.async_wait(as_tuple(use_awaitable));
        if (ec) {
            break;
        }
    }
}

} // namespace iam_tokend
