// One profile's token: obtained from IAM, kept fresh, handed to clients.
//
// A TokenSource owns a single coroutine, run(), that is the only code that
// talks to IAM for its profile: that is what makes refreshes single flight.
// It sleeps until the next planned attempt (see schedule.hpp), makes it, and
// wakes every client waiting for a token. Clients never call IAM; they ask
// the source for a token with get() and, when none is good enough yet, wait
// for run() to produce one, bounded by their own deadline.
//
// Lifetimes are measured on the boot-time clock from the moment the request
// was sent. A token is handed out only while its remaining life is above the
// profile's `min_valid` (or the client's, when larger), so an expired token
// is never served, even after a suspend or while IAM is down. Timers run
// on the monotonic clock, which stops during a suspend, so the refresh loop
// never sleeps longer than clock_check_interval at a time and compares the
// two clocks whenever it or a client looks: time the monotonic clock did
// not see is logged once and the loop acts on the boot-time clock at once.
//
// Like everything in the daemon, a source lives on the one io_context
// thread; nothing here is locked.
#pragma once

#include "boot_clock.hpp"
#include "config.hpp"
#include "failure.hpp"
#include "https_client.hpp"
#include "iam_response.hpp"
#include "schedule.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace iam_tokend {

// Client requests for a refresh ("min_valid", POST /v1/refresh) start an
// attempt at most this often, so clients cannot drive IAM into a loop.
inline constexpr Seconds min_requested_refresh_interval{5};
// A new token counts as progress only when it expires at least this much
// later than the one served; IAM rounds expires_in to whole seconds.
inline constexpr Seconds min_life_gain{1};
// The refresh loop re-reads the boot-time clock at least this often.
inline constexpr Seconds clock_check_interval{10};
// More boot-time than monotonic progress than this is a suspend, and logged.
inline constexpr Seconds unaccounted_time_threshold{1};

// Where a source reads the time and how it reaches IAM. The daemon uses the
// defaults; unit tests put in clocks that jump and an IAM that answers from
// memory.
struct SourceEnvironment {
    using Post = std::function<boost::asio::awaitable<boost::system::result<HttpReply, Failure>>(
        boost::asio::any_io_executor,
        HttpsRequest)>;

    BootClock::time_point (*boot_now)() = &BootClock::now;
    std::chrono::steady_clock::time_point (*steady_now)() = &std::chrono::steady_clock::now;
    Post post = &https_post;
};

struct Token {
    std::string access_token;
    std::string token_type;
    std::string fingerprint;
    BootClock::time_point obtained_at;                // when the request was sent
    BootClock::time_point expires_at;                 // obtained_at + expires_in
    std::chrono::system_clock::time_point expiration; // the same, by the local clock
    std::optional<std::int64_t> iam_expiration;       // as IAM reported it
    bool restored = false; // saved by an earlier run, not obtained by this one
    // With response_type "cloud_iam,uaa": the UAA token IAM issued in the
    // same reply. It is taken to live as long as the IAM token beside it.
    std::optional<std::string> uaa_token;
};

enum class SourceState { starting, valid, refreshing, degraded, expired };

// What a source tells its listeners (metrics, sinks, systemd status...).
enum class SourceEvent {
    new_token,      // a new token is being served
    attempt_failed, // an attempt failed; last_error() says why
    expired,        // the served token stopped being servable
};

std::string_view to_string(SourceState state);

class TokenSource : public std::enable_shared_from_this<TokenSource> {
public:
    TokenSource(boost::asio::any_io_executor executor,
                Profile profile,
                std::string secret,
                SourceEnvironment environment = {});
    ~TokenSource();
    TokenSource(const TokenSource&) = delete;
    TokenSource& operator=(const TokenSource&) = delete;

    using Listener = std::function<void(const TokenSource&, SourceEvent)>;

    // Listeners run on the io_context thread, right after the change; they
    // must not block.
    void add_listener(Listener listener) { listeners_.push_back(std::move(listener)); }

    // Called before start(): takes over a token and refresh token saved by
    // an earlier run. A servable token is served at once and refreshed on
    // the usual schedule, as if this run had obtained it at `obtained_at`;
    // returns whether it was. Otherwise only the refresh token is kept,
    // which still spares the first attempt an API-key login.
    bool adopt(std::optional<Token> token, std::optional<std::string> refresh_token);

    // Called before start() when a reload replaces `previous` (the profile's
    // settings or secret changed) and no saved token was adopted: the old
    // token, while servable, is served until this source's own first login,
    // which starts at once. A first token that does not outlive the old one
    // is treated like any token that brings no progress (the old one stays,
    // retried with backoff).
    void serve_meanwhile(const TokenSource& previous);

    // Starts the refresh loop; stop() ends it and releases every waiter.
    void start();
    void stop();

    // A token with at least `min_valid` left (never less than the profile's
    // own min_valid). When there is none, asks for an attempt and waits up to
    // `wait` for it; null when none could be had in time.
    boost::asio::awaitable<std::shared_ptr<const Token>> get(Seconds min_valid, Seconds wait);

    // Asks for a refresh now (single flight, rate limited) and waits up to
    // `wait` for its outcome; null when it failed or took too long.
    boost::asio::awaitable<std::shared_ptr<const Token>> refresh(Seconds wait);

    // The token if it is servable right now, without waiting.
    std::shared_ptr<const Token> current(Seconds min_valid = Seconds{0}) const;

    // Seconds a client should wait before asking again (Retry-After).
    std::chrono::seconds retry_after() const;

    // Whole seconds until the next attempt starts; 0 while one is under way.
    std::int64_t next_refresh_in() const;

    SourceState state() const;
    int consecutive_failures() const { return consecutive_failures_; }
    const std::optional<Failure>& last_error() const { return last_error_; }
    boost::json::object status() const;
    const Profile& profile() const { return profile_; }
    const std::string& secret() const { return secret_; }

    // The latest token, servable or not; null before the first.
    std::shared_ptr<const Token> latest() const { return token_; }
    // The refresh token that came with it, if any. A secret: never log it.
    const std::optional<std::string>& refresh_token() const { return refresh_token_; }
    // The grant and the duration of the last exchange with IAM.
    AttemptGrant last_grant() const { return last_grant_; }
    BootClock::duration last_attempt_duration() const { return last_attempt_duration_; }

    // Adds `key` to status(), its value computed each time status is asked
    // for (e.g. the state of a file sink).
    using StatusSection = std::function<boost::json::value()>;
    void add_status_section(std::string key, StatusSection section) {
        status_sections_.emplace_back(std::move(key), std::move(section));
    }

private:
    boost::asio::awaitable<void> run();
    boost::asio::awaitable<void> attempt();
    boost::asio::awaitable<std::shared_ptr<const Token>>
    wait_for(Seconds min_valid, Seconds wait, bool want_new);
    void accept(TokenGrant grant,
                AttemptGrant kind,
                BootClock::time_point sent,
                std::chrono::system_clock::time_point sent_wall);
    void install(TokenGrant grant,
                 BootClock::time_point sent,
                 std::chrono::system_clock::time_point sent_wall);
    void keep_current(const std::string& why);
    void fail(Failure failure, AttemptGrant grant);
    void request_attempt();
    void wake_waiters();
    void notify(SourceEvent event);
    void log_failure(const Failure& failure, AttemptGrant grant, Reaction reaction);
    Seconds required(Seconds min_valid) const;
    BootClock::time_point boot_now() const { return environment_.boot_now(); }
    void check_clocks();

    boost::asio::any_io_executor executor_;
    Profile profile_;
    std::string secret_;
    std::mt19937_64 random_;
    SourceEnvironment environment_;

    std::shared_ptr<const Token> token_;
    std::optional<std::string> refresh_token_;
    std::optional<std::string> uaa_refresh_token_; // renewed with the refresh token
    BootClock::time_point next_attempt_;
    BootClock::time_point last_attempt_start_{};
    boost::asio::steady_timer wakeup_;
    std::vector<boost::asio::steady_timer*> waiters_;
    std::vector<Listener> listeners_;
    std::vector<std::pair<std::string, StatusSection>> status_sections_;
    bool running_ = false;
    bool stopping_ = false;
    bool in_flight_ = false;
    bool expired_warned_ = false;
    bool no_gain_warned_ = false;
    std::uint64_t attempts_done_ = 0;
    // Both clocks as last read by check_clocks().
    BootClock::time_point boot_mark_;
    std::chrono::steady_clock::time_point steady_mark_;

    // Reported in status.
    int consecutive_failures_ = 0;
    std::optional<Failure> last_error_;
    std::optional<std::chrono::system_clock::time_point> last_attempt_at_;
    bool last_attempt_ok_ = false;
    AttemptGrant last_grant_ = AttemptGrant::apikey;
    BootClock::duration last_attempt_duration_{};
    std::uint64_t logins_ = 0;
    std::uint64_t refreshes_ = 0;
    std::uint64_t failures_ = 0;
};

} // namespace iam_tokend
