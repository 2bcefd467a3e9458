#include "schedule.hpp"

#include <gtest/gtest.h>

#include <random>

namespace iam_tokend {
namespace {

using std::chrono::seconds;

const BootClock::time_point t0{std::chrono::hours(1)};

double offset_s(BootClock::time_point at, BootClock::time_point from) {
    return std::chrono::duration<double>(at - from).count();
}

TEST(Schedule, RefreshesAtTheFractionWithoutJitter) {
    RefreshSettings settings;
    auto at = refresh_time(t0, Seconds(3600), t0, settings, 0.0);
    EXPECT_DOUBLE_EQ(offset_s(at, t0), 2880.0);
}

TEST(Schedule, JitterMovesByAtMostItsFractionOfTheLife) {
    RefreshSettings settings;
    EXPECT_DOUBLE_EQ(offset_s(refresh_time(t0, Seconds(3600), t0, settings, -1.0), t0), 2700.0);
    EXPECT_DOUBLE_EQ(offset_s(refresh_time(t0, Seconds(3600), t0, settings, 1.0), t0), 3060.0);
    // Draws out of range are clamped, never pushed past the bounds.
    EXPECT_DOUBLE_EQ(offset_s(refresh_time(t0, Seconds(3600), t0, settings, 9.0), t0), 3060.0);
}

TEST(Schedule, StartsWellBeforeTheTokenStopsBeingServable) {
    RefreshSettings settings;
    settings.at_fraction = 0.95;
    auto at = refresh_time(t0, Seconds(600), t0, settings, 1.0);
    EXPECT_DOUBLE_EQ(offset_s(at, t0), 0.9 * 540.0);

    // A 20 s token with min_valid 5: servable for 15 s, refreshed by 13.5 s.
    settings.at_fraction = 0.8;
    settings.min_valid = Seconds(5);
    at = refresh_time(t0, Seconds(20), t0, settings, 1.0);
    EXPECT_DOUBLE_EQ(offset_s(at, t0), 13.5);
}

TEST(Schedule, NeverSoonerThanTheMinimumGap) {
    RefreshSettings settings;
    // A 45 s token with min_valid 60 would be "due" in the past.
    auto at = refresh_time(t0, Seconds(45), t0, settings, 0.0);
    EXPECT_DOUBLE_EQ(offset_s(at, t0), min_refresh_gap.count());
}

TEST(Schedule, PropertyRefreshLiesInItsWindow) {
    std::mt19937_64 random(12345);
    std::uniform_real_distribution<double> life_s(1.0, 86400.0);
    std::uniform_real_distribution<double> fraction(0.1, 0.9);
    std::uniform_real_distribution<double> draw(-1.0, 1.0);
    std::uniform_real_distribution<double> elapsed(0.0, 1.0);

    for (int i = 0; i < 100000; ++i) {
        RefreshSettings settings;
        settings.at_fraction = fraction(random);
        settings.jitter_fraction = std::min(0.09, settings.at_fraction / 2);
        settings.min_valid = Seconds(std::uniform_real_distribution<double>(0, 120)(random));
        Seconds life(life_s(random));
        auto now = t0 + std::chrono::duration_cast<BootClock::duration>(life * elapsed(random));

        auto at = refresh_time(t0, life, now, settings, draw(random));

        ASSERT_GE(offset_s(at, now), min_refresh_gap.count() - 1e-6);
        double servable = life.count() - settings.min_valid.count();
        double latest = std::max(servable * latest_refresh_fraction,
                                 offset_s(now, t0) + min_refresh_gap.count());
        ASSERT_LE(offset_s(at, t0), latest + 1e-6);
        double nominal_low = life.count() * (settings.at_fraction - settings.jitter_fraction);
        ASSERT_GE(offset_s(at, t0),
                  std::min(nominal_low, servable * latest_refresh_fraction) - 1e-6);
    }
}

TEST(Schedule, PropertyRetriesAreNeverSoonerThanASecondNorPastTheirBounds) {
    std::mt19937_64 random(2024);
    std::uniform_real_distribution<double> initial_s(0.001, 30.0);
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    std::uniform_int_distribution<int> failures(1, 100);
    std::uniform_int_distribution<int> asked_s(0, 100000);

    for (int i = 0; i < 100000; ++i) {
        RefreshSettings settings;
        settings.backoff_initial = Seconds(initial_s(random));
        settings.backoff_max = settings.backoff_initial * (1.0 + 100 * unit(random));
        std::optional<seconds> retry_after;
        if (unit(random) < 0.5) {
            retry_after = seconds(asked_s(random));
        }

        double delay = backoff_delay(failures(random), settings, unit(random), retry_after).count();

        ASSERT_GE(delay, min_refresh_gap.count());
        double bound = std::max(settings.backoff_max.count(), min_refresh_gap.count());
        if (retry_after) {
            double asked = static_cast<double>(std::min(*retry_after, retry_after_ceiling).count());
            ASSERT_GE(delay, asked);
            bound = std::max(bound, asked);
        }
        ASSERT_LE(delay, bound + 1e-9);
    }
}

TEST(Schedule, BackoffDoublesToItsCap) {
    RefreshSettings settings; // 1 s doubling to 60 s
    EXPECT_DOUBLE_EQ(backoff_delay(1, settings, 1.0).count(), 1.0);
    EXPECT_DOUBLE_EQ(backoff_delay(2, settings, 1.0).count(), 2.0);
    EXPECT_DOUBLE_EQ(backoff_delay(3, settings, 1.0).count(), 4.0);
    EXPECT_DOUBLE_EQ(backoff_delay(6, settings, 1.0).count(), 32.0);
    EXPECT_DOUBLE_EQ(backoff_delay(7, settings, 1.0).count(), 60.0);
    EXPECT_DOUBLE_EQ(backoff_delay(1000, settings, 1.0).count(), 60.0);
}

TEST(Schedule, BackoffJitterStaysBetweenInitialAndCeiling) {
    RefreshSettings settings;
    settings.backoff_initial = Seconds(2);
    settings.backoff_max = Seconds(30);
    std::mt19937_64 random(7);
    std::uniform_real_distribution<double> draw(0.0, 1.0);
    for (int failures = 1; failures < 40; ++failures) {
        double ceiling = std::min(30.0, 2.0 * std::pow(2.0, failures - 1));
        for (int i = 0; i < 200; ++i) {
            double delay = backoff_delay(failures, settings, draw(random)).count();
            ASSERT_GE(delay, 2.0);
            ASSERT_LE(delay, ceiling);
        }
    }
    EXPECT_DOUBLE_EQ(backoff_delay(5, settings, 0.0).count(), 2.0);
}

TEST(Schedule, RetryAfterWinsWhenLongerAndIsCapped) {
    RefreshSettings settings;
    EXPECT_DOUBLE_EQ(backoff_delay(1, settings, 0.0, seconds(30)).count(), 30.0);
    EXPECT_DOUBLE_EQ(backoff_delay(7, settings, 1.0, seconds(5)).count(), 60.0);
    EXPECT_DOUBLE_EQ(backoff_delay(1, settings, 0.0, seconds(86400)).count(),
                     static_cast<double>(retry_after_ceiling.count()));
}

TEST(Schedule, BackoffIsNeverShorterThanTheMinimumGap) {
    RefreshSettings settings;
    settings.backoff_initial = Seconds(0.01);
    EXPECT_DOUBLE_EQ(backoff_delay(1, settings, 0.0).count(), min_refresh_gap.count());
}

TEST(Schedule, CredentialErrorsRetryAtTheCap) {
    RefreshSettings settings;
    EXPECT_DOUBLE_EQ(credential_retry_delay(settings).count(), 60.0);
    EXPECT_DOUBLE_EQ(credential_retry_delay(settings, seconds(120)).count(), 120.0);
}

TEST(Schedule, ReactionsFollowTheGrantAndStatus) {
    Failure rejected;
    rejected.kind = FailureKind::iam;
    rejected.http_status = 400;
    EXPECT_EQ(react_to(rejected, AttemptGrant::refresh_token), Reaction::login_now);
    EXPECT_EQ(react_to(rejected, AttemptGrant::apikey), Reaction::credential_error);

    rejected.http_status = 401;
    EXPECT_EQ(react_to(rejected, AttemptGrant::refresh_token), Reaction::login_now);
    rejected.http_status = 403;
    EXPECT_EQ(react_to(rejected, AttemptGrant::apikey), Reaction::credential_error);
    EXPECT_EQ(react_to(rejected, AttemptGrant::refresh_token), Reaction::backoff);

    for (int status : {429, 500, 502, 503}) {
        Failure transient;
        transient.kind = FailureKind::http;
        transient.http_status = status;
        EXPECT_EQ(react_to(transient, AttemptGrant::refresh_token), Reaction::backoff);
        EXPECT_EQ(react_to(transient, AttemptGrant::apikey), Reaction::backoff);
    }
    Failure network;
    EXPECT_EQ(react_to(network, AttemptGrant::apikey), Reaction::backoff);
}

} // namespace
} // namespace iam_tokend
