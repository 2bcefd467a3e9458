#include "schedule.hpp"

#include <algorithm>
#include <cmath>

namespace iam_tokend {

namespace {

BootClock::duration to_boot(Seconds seconds) {
    return std::chrono::duration_cast<BootClock::duration>(seconds);
}

} // namespace

BootClock::time_point refresh_time(BootClock::time_point obtained,
                                   Seconds life,
                                   BootClock::time_point now,
                                   const RefreshSettings& settings,
                                   double jitter_draw) {
    double draw = std::clamp(jitter_draw, -1.0, 1.0);
    double fraction = settings.at_fraction + settings.jitter_fraction * draw;
    auto planned = obtained + to_boot(life * fraction);

    // Start early enough that the refresh (and a retry or two) can finish
    // while the token is still servable.
    auto latest = obtained + to_boot((life - settings.min_valid) * latest_refresh_fraction);
    planned = std::min(planned, latest);

    return std::max(planned, now + to_boot(min_refresh_gap));
}

Seconds backoff_delay(int failures,
                      const RefreshSettings& settings,
                      double draw,
                      std::optional<std::chrono::seconds> retry_after) {
    int doublings = std::clamp(failures - 1, 0, 62);
    Seconds ceiling =
        std::min(settings.backoff_max, settings.backoff_initial * std::ldexp(1.0, doublings));
    ceiling = std::max(ceiling, settings.backoff_initial);
    Seconds delay = settings.backoff_initial +
                    (ceiling - settings.backoff_initial) * std::clamp(draw, 0.0, 1.0);

    if (retry_after) {
        Seconds asked = std::min(*retry_after, retry_after_ceiling);
        delay = std::max(delay, asked);
    }
    return std::max(delay, min_refresh_gap);
}

Seconds credential_retry_delay(const RefreshSettings& settings,
                               std::optional<std::chrono::seconds> retry_after) {
    Seconds delay = settings.backoff_max;
    if (retry_after) {
        delay = std::max(delay, Seconds(std::min(*retry_after, retry_after_ceiling)));
    }
    return std::max(delay, min_refresh_gap);
}

std::string_view to_string(AttemptGrant grant) {
    return grant == AttemptGrant::refresh_token ? "refresh_token" : "apikey";
}

Reaction react_to(const Failure& failure, AttemptGrant grant) {
    int status = failure.http_status.value_or(0);
    bool rejected = status == 400 || status == 401;

    if (grant == AttemptGrant::refresh_token && rejected) {
        return Reaction::login_now;
    }
    if (grant == AttemptGrant::apikey && (rejected || status == 403)) {
        return Reaction::credential_error;
    }
    return Reaction::backoff;
}

} // namespace iam_tokend
