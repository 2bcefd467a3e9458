#include "token_source.hpp"

#include "https_client.hpp"
#include "iam_request.hpp"
#include "log.hpp"
#include "proxy.hpp"
#include "spawn.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/value.hpp>
#include <openssl/crypto.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <bit>

namespace iam_tokend {
namespace asio = boost::asio;
namespace json = boost::json;
using asio::as_tuple;
using asio::use_awaitable;

namespace {

BootClock::duration to_boot(Seconds seconds) {
    return std::chrono::duration_cast<BootClock::duration>(seconds);
}

std::int64_t whole_seconds(BootClock::duration duration) {
    return std::chrono::floor<std::chrono::seconds>(duration).count();
}

std::int64_t unix_time(std::chrono::system_clock::time_point at) {
    return std::chrono::floor<std::chrono::seconds>(at.time_since_epoch()).count();
}

json::value failure_json(const Failure& failure) {
    json::object out;
    out["kind"] = to_string(failure.kind);
    out["message"] = failure.message;
    out["http_status"] = failure.http_status ? json::value(*failure.http_status) : nullptr;
    out["error_code"] = failure.error_code ? json::value(*failure.error_code) : nullptr;
    out["request_id"] = failure.request_id ? json::value(*failure.request_id) : nullptr;
    return out;
}

// Overwrites a secret held in memory before it is freed.
void cleanse(std::optional<std::string>& secret) {
    if (secret) {
        std::string& value = *secret;
        OPENSSL_cleanse(value.data(), value.size());
    }
}

// A reply that lacks the UAA token the profile asked for is no token at
// all: serving the IAM token alone would leave `kind=uaa` clients without.
Failure missing_uaa_token(int http_status) {
    Failure failure;
    failure.kind = FailureKind::bad_response;
    failure.message = "the reply has no uaa_token although response_type asks for one";
    failure.http_status = http_status;
    return failure;
}

} // namespace

std::string_view to_string(SourceState state) {
    switch (state) {
    case SourceState::starting:
        return "starting";
    case SourceState::valid:
        return "valid";
    case SourceState::refreshing:
        return "refreshing";
    case SourceState::degraded:
        return "degraded";
    case SourceState::expired:
        return "expired";
    }
    return "unknown";
}

TokenSource::TokenSource(asio::any_io_executor executor,
                         Profile profile,
                         std::string secret,
                         SourceEnvironment environment)
    : executor_(std::move(executor)),
      profile_(std::move(profile)),
      secret_(std::move(secret)),
      random_(std::random_device{}()),
      environment_(std::move(environment)),
      next_attempt_(boot_now()),
      wakeup_(executor_),
      boot_mark_(boot_now()),
      steady_mark_(environment_.steady_now()) {}

TokenSource::~TokenSource() {
    OPENSSL_cleanse(secret_.data(), secret_.size());
    cleanse(refresh_token_);
    cleanse(uaa_refresh_token_);
}

void TokenSource::start() {
    if (running_) {
        return;
    }
    running_ = true;
    // The completion handler holds the source alive until run() returns.
    asio::co_spawn(executor_,
                   run(),
                   log_escape("[profile " + profile_.name + "] refresh loop", shared_from_this()));
}

bool TokenSource::adopt(std::optional<Token> token, std::optional<std::string> refresh_token) {
    if (running_ || token_) {
        return false;
    }
    if (refresh_token) {
        refresh_token_ = std::move(refresh_token);
    }
    auto now = boot_now();
    if (!token || token->expires_at - now <= to_boot(profile_.refresh.min_valid)) {
        return false;
    }

    auto life = std::chrono::duration_cast<Seconds>(token->expires_at - token->obtained_at);
    std::uniform_real_distribution<double> jitter(-1.0, 1.0);
    next_attempt_ = refresh_time(token->obtained_at, life, now, profile_.refresh, jitter(random_));
    token->restored = true;
    token_ = std::make_shared<const Token>(std::move(*token));
    spdlog::info("[profile {}] serving token {} saved by an earlier run: valid for {} s more, "
                 "next refresh in {} s",
                 profile_.name,
                 token_->fingerprint,
                 whole_seconds(token_->expires_at - now),
                 whole_seconds(next_attempt_ - now));
    notify(SourceEvent::new_token);
    return true;
}

void TokenSource::serve_meanwhile(const TokenSource& previous) {
    if (!token_) {
        token_ = previous.token_;
    }
}

void TokenSource::stop() {
    stopping_ = true;
    wakeup_.cancel();
    wake_waiters();
}

asio::awaitable<void> TokenSource::run() {
    spdlog::debug("[profile {}] token source started for {}", profile_.name, profile_.iam_url);
    if (auto proxy = choose_proxy(profile_.iam_url, profile_.proxy, process_environment())) {
        spdlog::info("[profile {}] reaching IAM through {}", profile_.name, describe(*proxy));
    }
    while (!stopping_) {
        check_clocks();
        auto now = boot_now();
        if (now >= next_attempt_) {
            co_await attempt();
            continue;
        }

        // Also wake when the token stops being servable, to say so once.
        auto wake = next_attempt_;
        if (token_ && !expired_warned_) {
            wake = std::min(wake, token_->expires_at - to_boot(profile_.refresh.min_valid));
        }
        auto sleep =
            std::clamp(wake - now, BootClock::duration::zero(), to_boot(clock_check_interval));
        wakeup_.expires_after(sleep);
        co_await wakeup_.async_wait(as_tuple(use_awaitable));

        if (token_ && !expired_warned_ && !current()) {
            expired_warned_ = true;
            spdlog::error("[profile {}] token {} is no longer servable and no new one was had: {}",
                          profile_.name,
                          token_->fingerprint,
                          last_error_ ? last_error_->describe() : "no attempt finished yet");
            notify(SourceEvent::expired);
        }
    }
}

asio::awaitable<void> TokenSource::attempt() {
    AttemptGrant grant = refresh_token_ ? AttemptGrant::refresh_token : AttemptGrant::apikey;
    HttpsRequest request = grant == AttemptGrant::refresh_token
                               ? refresh_request(profile_, *refresh_token_)
                               : login_request(profile_, secret_);

    in_flight_ = true;
    last_grant_ = grant;
    auto sent = boot_now();
    auto sent_wall = std::chrono::system_clock::now();
    last_attempt_start_ = sent;
    last_attempt_at_ = sent_wall;
    spdlog::debug("[profile {}] asking IAM for a token ({} grant)",
                  profile_.name,
                  to_string(grant));

    auto reply = co_await environment_.post(executor_, std::move(request));
    in_flight_ = false;
    last_attempt_duration_ = boot_now() - sent;
    ++attempts_done_;
    if (stopping_) {
        co_return;
    }

    if (!reply) {
        fail(reply.error(), grant);
    } else if (auto parsed = parse_token_reply(*reply); !parsed) {
        Failure failure = parsed.error();
        if (reply->retry_after) {
            failure.retry_after = parse_retry_after(*reply->retry_after, sent_wall);
        }
        fail(std::move(failure), grant);
    } else if (wants_uaa(profile_) && !parsed->uaa_token) {
        fail(missing_uaa_token(reply->status), grant);
    } else {
        if (grant == AttemptGrant::refresh_token) {
            ++refreshes_;
        } else {
            ++logins_;
        }
        accept(std::move(*parsed), grant, sent, sent_wall);
    }
    wake_waiters();
}

void TokenSource::accept(TokenGrant grant,
                         AttemptGrant kind,
                         BootClock::time_point sent,
                         std::chrono::system_clock::time_point sent_wall) {
    // Always keep the newest refresh token, even with a token refused
    // below: an IAM that rotates them has already retired the previous one.
    // A reply without one keeps the one we have.
    if (grant.refresh_token) {
        refresh_token_ = std::move(grant.refresh_token);
    }
    if (grant.uaa_refresh_token) {
        uaa_refresh_token_ = std::move(grant.uaa_refresh_token);
    }

    // Never servable, so installing it would only start the next attempt.
    if (grant.expires_in <= profile_.refresh.min_valid) {
        Failure failure;
        failure.kind = FailureKind::bad_response;
        failure.http_status = 200;
        failure.message = fmt::format("IAM's token lives {} s, not more than min_valid_s {:g} s, "
                                      "so it could never be served",
                                      grant.expires_in.count(),
                                      profile_.refresh.min_valid.count());
        fail(std::move(failure), kind);
        return;
    }

    // The same token again, or one that expires no later than the one
    // served, is no progress: keep serving ours and back off.
    if (token_ && grant.access_token == token_->access_token) {
        keep_current(fmt::format("IAM sent token {} again, with expires_in {} s",
                                 token_->fingerprint,
                                 grant.expires_in.count()));
        return;
    }
    auto expires_at = sent + to_boot(grant.expires_in);
    if (token_ && expires_at <= token_->expires_at + to_boot(min_life_gain)) {
        keep_current(fmt::format("IAM's new token {} (expires_in {} s) does not expire later "
                                 "than token {}",
                                 fingerprint(grant.access_token),
                                 grant.expires_in.count(),
                                 token_->fingerprint));
        return;
    }
    install(std::move(grant), sent, sent_wall);
}

void TokenSource::keep_current(const std::string& why) {
    ++consecutive_failures_;
    ++failures_;
    last_attempt_ok_ = false;
    std::uniform_real_distribution<double> draw(0.0, 1.0);
    auto delay = backoff_delay(consecutive_failures_, profile_.refresh, draw(random_));
    next_attempt_ = boot_now() + to_boot(delay);

    // Said once until a token that helps arrives; the backoff says the rest.
    auto level = no_gain_warned_ ? spdlog::level::debug : spdlog::level::warn;
    no_gain_warned_ = true;
    spdlog::log(level,
                "[profile {}] {}: no progress; still serving token {}, next attempt in {:.1f} s",
                profile_.name,
                why,
                token_->fingerprint,
                delay.count());

    Failure failure;
    failure.kind = FailureKind::bad_response;
    failure.message = why + ": no progress";
    failure.http_status = 200;
    last_error_ = std::move(failure);
    notify(SourceEvent::attempt_failed);
}

void TokenSource::install(TokenGrant grant,
                          BootClock::time_point sent,
                          std::chrono::system_clock::time_point sent_wall) {
    auto token = std::make_shared<Token>();
    token->access_token = std::move(grant.access_token);
    token->token_type = std::move(grant.token_type);
    token->fingerprint = fingerprint(token->access_token);
    token->obtained_at = sent;
    token->expires_at = sent + grant.expires_in;
    token->expiration = sent_wall + grant.expires_in;
    token->iam_expiration = grant.expiration;
    token->uaa_token = std::move(grant.uaa_token);

    auto now = boot_now();
    std::uniform_real_distribution<double> jitter(-1.0, 1.0);
    next_attempt_ = refresh_time(sent, grant.expires_in, now, profile_.refresh, jitter(random_));
    last_attempt_ok_ = true;
    consecutive_failures_ = 0;
    expired_warned_ = false;
    no_gain_warned_ = false;
    token_ = std::move(token);
    spdlog::info(
        "[profile {}] new token {} from the {} grant, valid for {} s, next refresh in {} s",
        profile_.name,
        token_->fingerprint,
        to_string(last_grant_),
        grant.expires_in.count(),
        whole_seconds(next_attempt_ - now));
    if (token_->iam_expiration) {
        auto skew = *token_->iam_expiration - unix_time(token_->expiration);
        if (std::abs(skew) > 60) {
            spdlog::warn("[profile {}] local clock differs from IAM's by about {} s",
                         profile_.name,
                         -skew);
        }
    }
    notify(SourceEvent::new_token);
}

void TokenSource::check_clocks() {
    auto boot = boot_now();
    auto steady = environment_.steady_now();
    auto unaccounted = (boot - boot_mark_) - (steady - steady_mark_);
    boot_mark_ = boot;
    steady_mark_ = steady;
    if (unaccounted < to_boot(unaccounted_time_threshold)) {
        return;
    }

    std::string token = !token_     ? "no token yet"
                        : current() ? "token " + token_->fingerprint + " is still servable"
                                    : "token " + token_->fingerprint + " is no longer servable";
    spdlog::info("[profile {}] {:.0f} s went unaccounted: the boot-time clock moved that much "
                 "more than the monotonic clock (the machine was suspended); {}",
                 profile_.name,
                 std::chrono::duration<double>(unaccounted).count(),
                 token);
    // The loop's timer slept on the monotonic clock: let it look again now.
    wakeup_.cancel();
}

void TokenSource::fail(Failure failure, AttemptGrant grant) {
    Reaction reaction = react_to(failure, grant);
    ++failures_;
    last_attempt_ok_ = false;
    auto now = boot_now();
    if (failure.retry_after && *failure.retry_after > retry_after_ceiling) {
        spdlog::warn("[profile {}] IAM asked to wait {} s (Retry-After); waiting {} s at most",
                     profile_.name,
                     failure.retry_after->count(),
                     retry_after_ceiling.count());
    }

    if (reaction == Reaction::login_now) {
        // The refresh token is dead; it is dropped, not retried.
        refresh_token_.reset();
        next_attempt_ = now;
    } else {
        ++consecutive_failures_;
        std::uniform_real_distribution<double> draw(0.0, 1.0);
        Seconds delay = reaction == Reaction::credential_error
                            ? credential_retry_delay(profile_.refresh, failure.retry_after)
                            : backoff_delay(consecutive_failures_,
                                            profile_.refresh,
                                            draw(random_),
                                            failure.retry_after);
        next_attempt_ = now + to_boot(delay);
    }

    log_failure(failure, grant, reaction);
    last_error_ = std::move(failure);
    notify(SourceEvent::attempt_failed);
}

void TokenSource::log_failure(const Failure& failure, AttemptGrant grant, Reaction reaction) {
    auto retry_in = std::chrono::duration<double>(next_attempt_ - boot_now()).count();
    if (reaction == Reaction::login_now) {
        spdlog::warn("[profile {}] IAM rejected the refresh token ({}); logging in again",
                     profile_.name,
                     failure.describe());
        return;
    }

    // Repeats of the same failure are logged at 1, 2, 4, 8... in a row.
    bool same = last_error_ && last_error_->kind == failure.kind &&
                last_error_->error_code == failure.error_code &&
                last_error_->http_status == failure.http_status;
    bool loud = !same || std::has_single_bit(static_cast<unsigned>(consecutive_failures_));
    bool have_token = current() != nullptr;
    auto level = !loud                                    ? spdlog::level::debug
                 : reaction == Reaction::credential_error ? spdlog::level::err
                 : have_token                             ? spdlog::level::warn
                                                          : spdlog::level::err;
    spdlog::log(level,
                "[profile {}] {} grant failed ({} in a row): {}: {}; {}, retrying in {:.1f} s",
                profile_.name,
                to_string(grant),
                consecutive_failures_,
                to_string(failure.kind),
                failure.describe(),
                have_token ? "still serving token " + token_->fingerprint : "no token to serve",
                retry_in);
}

std::shared_ptr<const Token> TokenSource::current(Seconds min_valid) const {
    if (!token_) {
        return nullptr;
    }
    auto left = token_->expires_at - boot_now();
    if (left <= to_boot(required(min_valid))) {
        return nullptr;
    }
    return token_;
}

Seconds TokenSource::required(Seconds min_valid) const {
    return std::max(min_valid, profile_.refresh.min_valid);
}

asio::awaitable<std::shared_ptr<const Token>> TokenSource::get(Seconds min_valid, Seconds wait) {
    check_clocks();
    if (auto token = current(min_valid)) {
        co_return token;
    }
    request_attempt();
    co_return co_await wait_for(min_valid, wait, false);
}

asio::awaitable<std::shared_ptr<const Token>> TokenSource::refresh(Seconds wait) {
    check_clocks();
    request_attempt();
    co_return co_await wait_for(Seconds{0}, wait, true);
}

asio::awaitable<std::shared_ptr<const Token>>
TokenSource::wait_for(Seconds min_valid, Seconds wait, bool want_new) {
    // No attempt can start within the client's wait (a backoff, or
    // Retry-After, stands): tell it at once rather than at its deadline.
    if (!in_flight_ && next_attempt_ - boot_now() > to_boot(wait)) {
        co_return nullptr;
    }

    auto started_at = attempts_done_;
    asio::steady_timer timer(executor_);
    timer.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(wait));

    while (!stopping_) {
        waiters_.push_back(&timer);
        auto [ec] = co_await timer.async_wait(as_tuple(use_awaitable));
        std::erase(waiters_, &timer);

        bool attempt_done = attempts_done_ != started_at;
        if (auto token = current(min_valid); token && (attempt_done || !want_new)) {
            co_return token;
        }
        if (!ec) {
            break; // the client's deadline
        }
        // A client waits for one outcome: the attempt under way (or the one
        // that follows at once when a dead refresh token is swapped for a
        // login), not for every retry of the backoff.
        if (attempt_done && !in_flight_ && next_attempt_ > boot_now()) {
            break;
        }
    }
    co_return nullptr;
}

void TokenSource::request_attempt() {
    if (in_flight_ || stopping_ || consecutive_failures_ > 0) {
        return; // an attempt is under way, or the backoff's retry stands
    }
    auto when = std::max(boot_now(), last_attempt_start_ + to_boot(min_requested_refresh_interval));
    if (when < next_attempt_) {
        next_attempt_ = when;
        wakeup_.cancel();
    }
}

void TokenSource::notify(SourceEvent event) {
    for (const auto& listener : listeners_) {
        listener(*this, event);
    }
}

void TokenSource::wake_waiters() {
    for (auto* timer : waiters_) {
        timer->cancel();
    }
}

std::chrono::seconds TokenSource::retry_after() const {
    auto left = std::chrono::ceil<std::chrono::seconds>(next_attempt_ - boot_now());
    return std::max(left, std::chrono::seconds(1));
}

std::int64_t TokenSource::next_refresh_in() const {
    if (in_flight_) {
        return 0;
    }
    return std::max<std::int64_t>(0, whole_seconds(next_attempt_ - BootClock::now()));
}

SourceState TokenSource::state() const {
    if (!token_) {
        return SourceState::starting;
    }
    if (!current()) {
        return SourceState::expired;
    }
    if (in_flight_) {
        return SourceState::refreshing;
    }
    return consecutive_failures_ > 0 ? SourceState::degraded : SourceState::valid;
}

json::object TokenSource::status() const {
    auto now = boot_now();
    json::object out;
    out["state"] = to_string(state());

    if (token_) {
        out["expires_in"] = whole_seconds(token_->expires_at - now);
        out["expiration"] = unix_time(token_->expiration);
        out["token_fingerprint"] = token_->fingerprint;
        if (token_->uaa_token) {
            out["uaa_token_fingerprint"] = fingerprint(*token_->uaa_token);
        }
        if (token_->iam_expiration) {
            out["clock_skew_s"] = unix_time(token_->expiration) - *token_->iam_expiration;
        }
    } else {
        out["expires_in"] = nullptr;
        out["expiration"] = nullptr;
        out["token_fingerprint"] = nullptr;
    }
    out["next_refresh_in"] = next_refresh_in();

    if (last_attempt_at_) {
        out["last_refresh"] = {
            {"at", unix_time(*last_attempt_at_)},
            {"result", last_attempt_ok_ ? "ok" : "error"},
            {"grant", to_string(last_grant_)},
        };
    } else {
        out["last_refresh"] = nullptr;
    }
    out["consecutive_failures"] = consecutive_failures_;
    out["last_error"] = last_error_ ? failure_json(*last_error_) : json::value(nullptr);
    out["counters"] = {
        {"logins", logins_},
        {"refreshes", refreshes_},
        {"failures", failures_},
    };
    for (const auto& [key, section] : status_sections_) {
        out[key] = section();
    }
    return out;
}

} // namespace iam_tokend
