// When a token source next talks to IAM: pure functions of the token, the
// clock and the settings, with the random draws passed in, so every rule
// here is unit tested without waiting or mocking a clock.
//
// The rules:
// - A new token is refreshed at `at_fraction` of its life, moved by up to
//   `jitter_fraction` of the life either way so a fleet does not refresh in
//   step; never later than latest_refresh_fraction of the time the token
//   is servable (its life minus `min_valid`), and never sooner than
//   min_refresh_gap from now.
// - A failed attempt is retried after an exponential backoff with full
//   jitter: a uniform draw between `backoff_initial` and
//   min(backoff_max, backoff_initial * 2^(failures - 1)). IAM's Retry-After
//   is honoured (up to retry_after_ceiling) and wins when it is longer.
// - A rejected refresh token means "log in with the API key now"; a
//   rejected API key is retried only at the backoff cap.
#pragma once

#include "boot_clock.hpp"
#include "config.hpp"
#include "failure.hpp"

#include <chrono>
#include <optional>
#include <string_view>

namespace iam_tokend {

// Nothing is scheduled sooner than this from now, whatever a token says.
inline constexpr Seconds min_refresh_gap{1};
// A refresh starts within this fraction of the token's servable time
// (life - min_valid), leaving the rest for the exchange and retries.
inline constexpr double latest_refresh_fraction = 0.9;
// The longest wait a Retry-After header can impose.
inline constexpr std::chrono::seconds retry_after_ceiling{600};

// When to refresh a token obtained at `obtained` with `life`.
// `jitter_draw` is uniform in [-1, 1].
BootClock::time_point refresh_time(BootClock::time_point obtained,
                                   Seconds life,
                                   BootClock::time_point now,
                                   const RefreshSettings& settings,
                                   double jitter_draw);

// The delay before retry number `failures` (1 for the first failure).
// `draw` is uniform in [0, 1].
Seconds backoff_delay(int failures,
                      const RefreshSettings& settings,
                      double draw,
                      std::optional<std::chrono::seconds> retry_after = std::nullopt);

// The delay before retrying a refused credential: the backoff cap, since
// asking again soon cannot help and IAM rate-limits token calls.
Seconds credential_retry_delay(const RefreshSettings& settings,
                               std::optional<std::chrono::seconds> retry_after = std::nullopt);

enum class AttemptGrant { apikey, refresh_token };

std::string_view to_string(AttemptGrant grant);

enum class Reaction {
    backoff,          // transient: retry after backoff_delay()
    login_now,        // the refresh token is dead: drop it, log in at once
    credential_error, // the API key (or password) is refused: retry at the cap
};

Reaction react_to(const Failure& failure, AttemptGrant grant);

} // namespace iam_tokend
