#include "iam_response.hpp"

#include <gtest/gtest.h>

namespace iam_tokend {
namespace {

HttpReply ok_reply(std::string body) {
    return HttpReply{200, "application/json", std::move(body), std::nullopt};
}

std::string with_expires_in(const std::string& value) {
    return R"({"access_token":"tok","refresh_token":"ref","token_type":"Bearer","expires_in":)" +
           value + R"(,"expiration":1700003600})";
}

TEST(IamResponse, GoodReplyGivesEveryField) {
    auto grant = parse_token_reply(ok_reply(with_expires_in("3600")));
    ASSERT_TRUE(grant);
    EXPECT_EQ(grant->access_token, "tok");
    EXPECT_EQ(grant->refresh_token, "ref");
    EXPECT_EQ(grant->token_type, "Bearer");
    EXPECT_EQ(grant->expires_in, std::chrono::seconds(3600));
    EXPECT_EQ(grant->expiration, 1700003600);
}

TEST(IamResponse, AcceptedFormsOfExpiresIn) {
    for (const char* value : {"3600", "3600.0", "3600.9", "\"3600\""}) {
        auto grant = parse_token_reply(ok_reply(with_expires_in(value)));
        ASSERT_TRUE(grant) << value;
        EXPECT_EQ(grant->expires_in, std::chrono::seconds(3600)) << value;
    }
}

TEST(IamResponse, RefusedFormsOfExpiresInNameTheFieldAndType) {
    struct Case {
        const char* value;
        const char* says;
    };
    for (auto [value, says] : {Case{"0", "outside"},
                               Case{"-5", "outside"},
                               Case{"1e30", "outside"},
                               Case{"999999999", "outside"},
                               Case{"null", "JSON type null"},
                               Case{"true", "JSON type bool"},
                               Case{"\"abc\"", "not a whole number"},
                               Case{"[]", "JSON type array"}}) {
        auto grant = parse_token_reply(ok_reply(with_expires_in(value)));
        ASSERT_FALSE(grant) << value;
        EXPECT_EQ(grant.error().kind, FailureKind::bad_response);
        EXPECT_NE(grant.error().message.find("expires_in"), std::string::npos) << value;
        EXPECT_NE(grant.error().message.find(says), std::string::npos)
            << value << ": " << grant.error().message;
    }
}

TEST(IamResponse, OutOfRangeExpiresInNamesItsJsonType) {
    for (auto [value, type] : {std::pair{"-5", "JSON type number"},
                               std::pair{"1e30", "JSON type number"},
                               std::pair{"\"0\"", "JSON type string"}}) {
        auto grant = parse_token_reply(ok_reply(with_expires_in(value)));
        ASSERT_FALSE(grant) << value;
        EXPECT_NE(grant.error().message.find(type), std::string::npos)
            << value << ": " << grant.error().message;
    }
}

TEST(IamResponse, TokensUpToTheLimitAreKeptWhole) {
    std::string access(max_token_size, 'a');
    std::string refresh(max_token_size, 'r');
    auto grant =
        parse_token_reply(ok_reply(R"({"access_token":")" + access + R"(","refresh_token":")" +
                                   refresh + R"(","expires_in":3600})"));
    ASSERT_TRUE(grant);
    EXPECT_EQ(grant->access_token, access);
    EXPECT_EQ(grant->refresh_token, refresh);
}

TEST(IamResponse, ALongerTokenIsRefusedWithBothSizes) {
    for (const char* field : {"access_token", "refresh_token", "uaa_token"}) {
        std::string body = R"({"access_token":"tok","expires_in":3600,")" + std::string(field) +
                           R"(":")" + std::string(max_token_size + 1, 'x') + R"("})";
        auto grant = parse_token_reply(ok_reply(body));
        ASSERT_FALSE(grant) << field;
        EXPECT_EQ(grant.error().kind, FailureKind::bad_response);
        EXPECT_EQ(grant.error().message,
                  std::string(field) + " is 65537 bytes, over the limit of 65536 bytes");
    }
}

TEST(IamResponse, MissingExpiresInOrAccessTokenIsAnError) {
    auto no_life = parse_token_reply(ok_reply(R"({"access_token":"tok"})"));
    ASSERT_FALSE(no_life);
    EXPECT_NE(no_life.error().message.find("expires_in is missing"), std::string::npos);

    auto no_token = parse_token_reply(ok_reply(R"({"expires_in":3600})"));
    ASSERT_FALSE(no_token);
    EXPECT_NE(no_token.error().message.find("access_token is missing"), std::string::npos);

    auto empty_token = parse_token_reply(ok_reply(R"({"access_token":"","expires_in":3600})"));
    ASSERT_FALSE(empty_token);
}

TEST(IamResponse, UnusableRefreshTokensAreUnset) {
    for (const char* value : {R"("not_supported")", R"("")", "null", "12"}) {
        auto grant = parse_token_reply(ok_reply(R"({"access_token":"tok","expires_in":60,)"
                                                R"("refresh_token":)" +
                                                std::string(value) + "}"));
        ASSERT_TRUE(grant) << value;
        EXPECT_FALSE(grant->refresh_token) << value;
    }
}

TEST(IamResponse, NotJsonIsABadResponseWithAShortCleanExcerpt) {
    std::string html = "<html>\n<body>" + std::string(5000, 'x') + "</body></html>";
    auto grant = parse_token_reply(ok_reply(html));
    ASSERT_FALSE(grant);
    EXPECT_EQ(grant.error().kind, FailureKind::bad_response);
    EXPECT_NE(grant.error().message.find("<html> <body>"), std::string::npos);
    EXPECT_LT(grant.error().message.size(), 300U);
}

TEST(IamResponse, ExcerptNeverQuotesATokenCutShort) {
    std::string cut = R"({"access_token":"eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjE3MDAwMDAwMDB9)";
    auto grant = parse_token_reply(ok_reply(cut));
    ASSERT_FALSE(grant);
    EXPECT_EQ(grant.error().message.find("eyJhbGciOiJSUzI1"), std::string::npos);
    EXPECT_NE(grant.error().message.find("[...]"), std::string::npos);
}

TEST(IamResponse, IamErrorBodyIsParsed) {
    HttpReply reply{400,
                    "application/json",
                    R"({"errorCode":"BXNIM0415E","errorMessage":"Provided API key could not be )"
                    R"(found.","context":{"requestId":"b3c1f2a4-9d8e-4f00-a1b2-c3d4e5f60718"}})",
                    std::nullopt};
    auto grant = parse_token_reply(reply);
    ASSERT_FALSE(grant);
    EXPECT_EQ(grant.error().kind, FailureKind::iam);
    EXPECT_EQ(grant.error().http_status, 400);
    EXPECT_EQ(grant.error().error_code, "BXNIM0415E");
    EXPECT_EQ(grant.error().request_id, "b3c1f2a4-9d8e-4f00-a1b2-c3d4e5f60718");
    EXPECT_EQ(grant.error().message, "Provided API key could not be found.");
    EXPECT_EQ(grant.error().describe(),
              "Provided API key could not be found. (HTTP 400, BXNIM0415E, "
              "request b3c1f2a4-9d8e-4f00-a1b2-c3d4e5f60718)");
}

TEST(IamResponse, IamErrorJsonWithServerStatusKeepsItsCode) {
    HttpReply reply{500, "application/json", R"({"errorCode":"BXNIM0002E"})", std::nullopt};
    auto failure = parse_error_reply(reply);
    EXPECT_EQ(failure.kind, FailureKind::iam);
    EXPECT_EQ(failure.error_code, "BXNIM0002E");
    EXPECT_EQ(failure.http_status, 500);
}

TEST(IamResponse, PlainHttpErrorNamesStatusTypeAndLength) {
    HttpReply reply{502, "text/html", "<h1>Bad gateway</h1>", std::nullopt};
    auto failure = parse_error_reply(reply);
    EXPECT_EQ(failure.kind, FailureKind::http);
    EXPECT_NE(failure.message.find("502"), std::string::npos);
    EXPECT_NE(failure.message.find("text/html"), std::string::npos);
    EXPECT_NE(failure.message.find("20 bytes"), std::string::npos);
}

TEST(IamResponse, RetryAfterAsSecondsAndAsDate) {
    auto now = std::chrono::system_clock::from_time_t(784111777); // Sun, 06 Nov 1994 08:49:37 GMT
    EXPECT_EQ(parse_retry_after("120", now), std::chrono::seconds(120));
    EXPECT_EQ(parse_retry_after(" 7 ", now), std::chrono::seconds(7));
    EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now), std::chrono::seconds(30));
    EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:40:00 GMT", now), std::chrono::seconds(0));
    EXPECT_FALSE(parse_retry_after("-3", now));
    EXPECT_FALSE(parse_retry_after("soon", now));
    EXPECT_FALSE(parse_retry_after("", now));
}

} // namespace
} // namespace iam_tokend
