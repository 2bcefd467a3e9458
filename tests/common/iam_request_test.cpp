#include "iam_request.hpp"

#include <gtest/gtest.h>

namespace iam_tokend {
namespace {

Profile sample_profile() {
    Profile profile;
    profile.name = "default";
    profile.iam_url = "https://iam.example.test/identity/token";
    return profile;
}

std::string header(const HttpsRequest& request, const std::string& name) {
    for (const auto& [key, value] : request.headers) {
        if (key == name) {
            return value;
        }
    }
    return {};
}

TEST(IamRequest, DefaultClientIsBxBx) {
    EXPECT_EQ(basic_authorization("bx", "bx"), "Basic Yng6Yng=");
}

TEST(IamRequest, FormEscapeKeepsUnreservedAndEscapesTheRest) {
    EXPECT_EQ(form_escape("aZ09-_.*"), "aZ09-_.*");
    EXPECT_EQ(form_escape("a b&c=d/e:f+"), "a+b%26c%3Dd%2Fe%3Af%2B");
}

TEST(IamRequest, LoginCarriesTheApiKeyGrantAndHeaders) {
    auto request = login_request(sample_profile(), "key with+plus");
    EXPECT_EQ(request.body,
              "grant_type=urn%3Aibm%3Aparams%3Aoauth%3Agrant-type%3Aapikey"
              "&apikey=key+with%2Bplus&response_type=cloud_iam");
    EXPECT_EQ(header(request, "Content-Type"), "application/x-www-form-urlencoded");
    EXPECT_EQ(header(request, "Accept"), "application/json");
    EXPECT_EQ(header(request, "Authorization"), "Basic Yng6Yng=");
    EXPECT_EQ(request.url, "https://iam.example.test/identity/token");
}

TEST(IamRequest, RefreshUsesTheSameClientAuth) {
    auto profile = sample_profile();
    profile.client_id = "me";
    profile.client_secret = "pw";
    auto request = refresh_request(profile, "r/1");
    EXPECT_EQ(request.body, "grant_type=refresh_token&refresh_token=r%2F1");
    EXPECT_EQ(header(request, "Authorization"), basic_authorization("me", "pw"));
}

TEST(IamRequest, PasswordGrantCarriesUserAndPassword) {
    auto profile = sample_profile();
    profile.grant = Grant::password;
    profile.username = "me@example.test";
    auto request = login_request(profile, "pass word");
    EXPECT_EQ(request.body,
              "grant_type=password&username=me%40example.test&password=pass+word"
              "&response_type=cloud_iam");
}

TEST(IamRequest, UaaAsksForTheCfClientOnLoginAndRefresh) {
    auto profile = sample_profile();
    profile.grant = Grant::password;
    profile.username = "me";
    profile.response_type = "cloud_iam,uaa";
    EXPECT_TRUE(wants_uaa(profile));

    auto login = login_request(profile, "pw");
    EXPECT_EQ(login.body,
              "grant_type=password&username=me&password=pw"
              "&response_type=cloud_iam%2Cuaa&uaa_client_id=cf&uaa_client_secret=");

    auto refresh = refresh_request(profile, "r1");
    EXPECT_EQ(refresh.body,
              "grant_type=refresh_token&refresh_token=r1"
              "&response_type=cloud_iam%2Cuaa&uaa_client_id=cf&uaa_client_secret=");
}

TEST(IamRequest, TheProfilesProxyIsUsed) {
    auto profile = sample_profile();
    EXPECT_EQ(login_request(profile, "k").proxy, std::nullopt);

    profile.proxy = "http://proxy.test:3128";
    auto request = refresh_request(profile, "r");
    ASSERT_TRUE(request.proxy);
    EXPECT_EQ(request.proxy->url, "http://proxy.test:3128");
}

} // namespace
} // namespace iam_tokend
