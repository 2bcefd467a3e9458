// A std::chrono clock on CLOCK_BOOTTIME.
//
// Token lifetimes are measured on this clock: unlike CLOCK_MONOTONIC it keeps
// counting while the machine is suspended, so a gateway that wakes from sleep
// sees its token as old as it really is. The wall clock is never used for
// lifetimes, because gateway clocks are often wrong at boot.
#pragma once

#include <chrono>
#include <ctime>

namespace iam_tokend {

struct BootClock {
    using duration = std::chrono::nanoseconds;
    using rep = duration::rep;
    using period = duration::period;
    using time_point = std::chrono::time_point<BootClock>;
    static constexpr bool is_steady = true;

    static time_point now() noexcept {
        timespec ts{};
        clock_gettime(CLOCK_BOOTTIME, &ts);
        return time_point(std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec));
    }
};

} // namespace iam_tokend
