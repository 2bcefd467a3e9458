// A token source across a suspend, with both clocks moved by hand.
//
// On Linux the monotonic clock (and with it every steady_timer) stops while
// the machine sleeps; the boot-time clock does not. These tests wake a
// source as if from a two-hour sleep that the monotonic clock saw as one
// second, and check that the token it held is no longer served and that the
// next client gets a fresh token (or a prompt "unavailable") instead of
// waiting for a timer that is still asleep.
#include "token_source.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>

namespace iam_tokend {
namespace {
namespace asio = boost::asio;
using namespace std::chrono_literals;

constexpr auto suspended_for = 2h;
constexpr auto monotonic_during_suspend = 1s;
// A client asking after the wake-up is answered well within this.
constexpr auto prompt = 1s;
constexpr Seconds client_wait{5};

// The clocks the source reads; each test moves them.
BootClock::time_point boot_time;
std::chrono::steady_clock::time_point monotonic_time;

BootClock::time_point fake_boot_now() {
    return boot_time;
}

std::chrono::steady_clock::time_point fake_steady_now() {
    return monotonic_time;
}

// IAM, answering from memory: a new hour-long token per call while up.
int iam_calls = 0;
bool iam_up = true;

asio::awaitable<boost::system::result<HttpReply, Failure>> fake_post(asio::any_io_executor,
                                                                     HttpsRequest) {
    ++iam_calls;
    if (!iam_up) {
        Failure failure;
        failure.kind = FailureKind::network;
        failure.message = "connection refused";
        co_return failure;
    }
    std::string body = R"({"access_token":"token-)" + std::to_string(iam_calls) +
                       R"(","refresh_token":"refresh","token_type":"Bearer","expires_in":3600})";
    co_return HttpReply{200, "application/json", std::move(body), std::nullopt};
}

class SuspendTest : public ::testing::Test {
protected:
    void SetUp() override {
        boot_time = BootClock::time_point(100h);
        monotonic_time = std::chrono::steady_clock::time_point(50h);
        iam_calls = 0;
        iam_up = true;

        previous_logger_ = spdlog::default_logger();
        auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log_);
        spdlog::set_default_logger(std::make_shared<spdlog::logger>("test", sink));

        Profile profile;
        profile.name = "gateway";
        profile.iam_url = "https://iam.invalid/identity/token";
        profile.refresh.backoff_initial = Seconds(30);
        profile.refresh.backoff_max = Seconds(60);
        SourceEnvironment environment{&fake_boot_now, &fake_steady_now, &fake_post};
        source_ = std::make_shared<TokenSource>(io_.get_executor(), profile, "key", environment);
        source_->start();
    }

    void TearDown() override {
        source_->stop();
        io_.run_for(1s);
        spdlog::set_default_logger(previous_logger_);
    }

    // What a client asking now would get (null: a 503), and how long it took.
    std::pair<std::shared_ptr<const Token>, std::chrono::steady_clock::duration> ask() {
        bool done = false;
        std::shared_ptr<const Token> token;
        asio::co_spawn(io_,
                       source_->get(Seconds{0}, client_wait),
                       [&](const std::exception_ptr&, std::shared_ptr<const Token> result) {
                           done = true;
                           token = std::move(result);
                       });
        auto started = std::chrono::steady_clock::now();
        auto give_up = started + 2 * client_wait;
        while (!done && std::chrono::steady_clock::now() < give_up) {
            io_.run_one_for(50ms);
        }
        EXPECT_TRUE(done) << "the client was never answered";
        return {token, std::chrono::steady_clock::now() - started};
    }

    void sleep_and_wake(std::chrono::steady_clock::duration boot_advance,
                        std::chrono::steady_clock::duration monotonic_advance) {
        boot_time += boot_advance;
        monotonic_time += monotonic_advance;
    }

    std::string log() const { return log_.str(); }

    asio::io_context io_;
    std::shared_ptr<TokenSource> source_;
    std::ostringstream log_;
    std::shared_ptr<spdlog::logger> previous_logger_;
};

TEST_F(SuspendTest, ExpiredTokenIsNotServedAndANewOneIsFetchedAtOnce) {
    auto [first, first_took] = ask();
    ASSERT_TRUE(first);
    EXPECT_EQ(first->access_token, "token-1");

    sleep_and_wake(suspended_for, monotonic_during_suspend);

    // Nothing has run since the wake-up, and the refresh timer (monotonic)
    // is far from due: the boot-time clock alone says the token is dead.
    EXPECT_EQ(source_->current(), nullptr);
    EXPECT_EQ(source_->state(), SourceState::expired);

    auto [second, took] = ask();
    ASSERT_TRUE(second);
    EXPECT_EQ(second->access_token, "token-2");
    EXPECT_EQ(iam_calls, 2);
    EXPECT_LT(took, prompt);
    EXPECT_NE(log().find("[profile gateway] 7199 s went unaccounted"), std::string::npos) << log();
}

TEST_F(SuspendTest, WithIamDownTheClientGetsAPromptNo) {
    ASSERT_TRUE(ask().first);
    iam_up = false;

    sleep_and_wake(suspended_for, monotonic_during_suspend);

    auto [token, took] = ask();
    EXPECT_EQ(token, nullptr);
    EXPECT_LT(took, prompt);
    EXPECT_EQ(iam_calls, 2); // the attempt started at the wake-up
    EXPECT_EQ(source_->state(), SourceState::expired);
}

TEST_F(SuspendTest, ARetryDueDuringTheSuspendIsMadeAtOnce) {
    // IAM down at start: the retry is planned 30 s (monotonic) later.
    iam_up = false;
    EXPECT_EQ(ask().first, nullptr);
    EXPECT_EQ(iam_calls, 1);

    iam_up = true;
    sleep_and_wake(suspended_for, monotonic_during_suspend);

    auto [token, took] = ask();
    ASSERT_TRUE(token);
    EXPECT_EQ(token->access_token, "token-2");
    EXPECT_LT(took, prompt);
}

TEST_F(SuspendTest, ClocksMovingTogetherAreNotASuspend) {
    ASSERT_TRUE(ask().first);

    sleep_and_wake(10min, 10min);

    auto [token, took] = ask();
    ASSERT_TRUE(token);
    EXPECT_EQ(token->access_token, "token-1");
    EXPECT_EQ(iam_calls, 1);
    EXPECT_EQ(log().find("unaccounted"), std::string::npos) << log();
}

} // namespace
} // namespace iam_tokend
