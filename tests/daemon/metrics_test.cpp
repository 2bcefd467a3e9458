#include "metrics.hpp"

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include <memory>

namespace iam_tokend {
namespace {

TEST(Metrics, RoutesKeepProfileNamesOutOfLabels) {
    EXPECT_EQ(route_of("/v1/token"), Route::token);
    EXPECT_EQ(route_of("/v1/token?format=raw"), Route::token);
    EXPECT_EQ(route_of("/v1/token/anything?wait=1"), Route::token_profile);
    EXPECT_EQ(route_of("/v1/refresh"), Route::refresh);
    EXPECT_EQ(route_of("/v1/refresh/x"), Route::refresh_profile);
    EXPECT_EQ(route_of("/v1/health"), Route::health);
    EXPECT_EQ(route_of("/v1/status"), Route::status);
    EXPECT_EQ(route_of("/metrics"), Route::metrics);
    EXPECT_EQ(route_of("/v1/token/a/b"), Route::other);
    EXPECT_EQ(route_of("/v1/token/"), Route::other);
    EXPECT_EQ(route_of("/random-client-chosen-path"), Route::other);
}

TEST(Metrics, HistogramBucketsAreCumulative) {
    DurationHistogram histogram;
    histogram.observe(0.01);
    histogram.observe(0.3);
    histogram.observe(100);
    std::string out;
    histogram.render(out, "d", "p=\"a\"");
    EXPECT_NE(out.find("d_bucket{p=\"a\",le=\"0.05\"} 1\n"), std::string::npos) << out;
    EXPECT_NE(out.find("d_bucket{p=\"a\",le=\"0.5\"} 2\n"), std::string::npos) << out;
    EXPECT_NE(out.find("d_bucket{p=\"a\",le=\"30\"} 2\n"), std::string::npos) << out;
    EXPECT_NE(out.find("d_bucket{p=\"a\",le=\"+Inf\"} 3\n"), std::string::npos) << out;
    EXPECT_NE(out.find("d_count{p=\"a\"} 3\n"), std::string::npos) << out;
    EXPECT_NE(out.find("d_sum{p=\"a\"} 100.31\n"), std::string::npos) << out;
}

TEST(Metrics, CountsRequestsAndConnections) {
    boost::asio::io_context io;
    Profile profile;
    profile.name = "p";
    Profiles profiles;
    profiles.sources["p"] = std::make_shared<TokenSource>(io.get_executor(), profile, "key");

    Metrics metrics;
    metrics.watch(*profiles.sources["p"]);
    metrics.count_request(Route::token, 200);
    metrics.count_request(Route::token, 200);
    metrics.count_request(Route::unparsed, 400);
    auto open = std::make_unique<OpenConnection>(&metrics);

    std::string page = metrics.render(profiles);
    EXPECT_NE(page.find("iam_tokend_local_requests_total{route=\"/v1/token\",status=\"200\"} 2\n"),
              std::string::npos);
    EXPECT_NE(page.find("iam_tokend_local_requests_total{route=\"unparsed\",status=\"400\"} 1\n"),
              std::string::npos);
    EXPECT_NE(page.find("iam_tokend_open_connections 1\n"), std::string::npos);
    EXPECT_NE(
        page.find("iam_tokend_refreshes_total{profile=\"p\",grant=\"apikey\",result=\"ok\"} 0"),
        std::string::npos);
    EXPECT_NE(page.find("iam_tokend_profile_state{profile=\"p\",state=\"starting\"} 1\n"),
              std::string::npos);
    // No token yet: no expiry to report.
    EXPECT_EQ(page.find("iam_tokend_token_expires_in_seconds{"), std::string::npos);

    open.reset();
    EXPECT_NE(metrics.render(profiles).find("iam_tokend_open_connections 0\n"), std::string::npos);
}

} // namespace
} // namespace iam_tokend
