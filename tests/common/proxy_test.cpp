#include "iam_request.hpp"
#include "proxy.hpp"

#include <gtest/gtest.h>

#include <map>

namespace iam_tokend {
namespace {

constexpr const char* iam_url = "https://iam.example.test/identity/token";

// An environment made of `variables` only.
EnvironmentLookup environment(std::map<std::string, std::string> variables) {
    return [variables = std::move(variables)](const char* name) -> const char* {
        auto it = variables.find(name);
        return it == variables.end() ? nullptr : it->second.c_str();
    };
}

TEST(ChooseProxy, NoneConfiguredAndNoneInTheEnvironmentMeansDirect) {
    EXPECT_EQ(choose_proxy(iam_url, std::nullopt, environment({})), std::nullopt);
}

TEST(ChooseProxy, TheProfilesProxyWinsOverTheEnvironment) {
    auto env = environment({{"HTTPS_PROXY", "http://env:1"}, {"NO_PROXY", "*"}});
    auto chosen = choose_proxy(iam_url, "http://configured:3128", env);
    ASSERT_TRUE(chosen);
    EXPECT_EQ(chosen->url, "http://configured:3128");
    EXPECT_EQ(chosen->source, "proxy");
}

TEST(ChooseProxy, LowerCaseVariablesComeFirst) {
    auto both = environment({{"https_proxy", "http://lower:1"}, {"HTTPS_PROXY", "http://upper:2"}});
    EXPECT_EQ(choose_proxy(iam_url, std::nullopt, both),
              (ProxySetting{"http://lower:1", "https_proxy"}));

    auto upper = environment({{"https_proxy", ""}, {"HTTPS_PROXY", "http://upper:2"}});
    EXPECT_EQ(choose_proxy(iam_url, std::nullopt, upper),
              (ProxySetting{"http://upper:2", "HTTPS_PROXY"}));
}

TEST(ChooseProxy, HttpProxyAloneIsNotUsedForHttps) {
    auto env = environment({{"HTTP_PROXY", "http://plain:1"}, {"http_proxy", "http://plain:1"}});
    EXPECT_EQ(choose_proxy(iam_url, std::nullopt, env), std::nullopt);
}

TEST(ChooseProxy, NoProxyExemptsTheIamHost) {
    auto env =
        environment({{"HTTPS_PROXY", "http://p:1"}, {"no_proxy", "localhost,.example.test"}});
    EXPECT_EQ(choose_proxy(iam_url, std::nullopt, env), std::nullopt);

    auto other = environment({{"HTTPS_PROXY", "http://p:1"}, {"NO_PROXY", "example.com"}});
    EXPECT_TRUE(choose_proxy(iam_url, std::nullopt, other));
}

TEST(NoProxy, NamesCoverThemselvesAndTheirSubdomains) {
    EXPECT_TRUE(no_proxy_matches("example.test", "example.test", "443"));
    EXPECT_TRUE(no_proxy_matches("example.test", "iam.example.test", "443"));
    EXPECT_TRUE(no_proxy_matches(".example.test", "iam.example.test", "443"));
    EXPECT_TRUE(no_proxy_matches("*.example.test", "iam.example.test", "443"));
    EXPECT_TRUE(no_proxy_matches("EXAMPLE.test", "iam.Example.TEST", "443"));
    EXPECT_FALSE(no_proxy_matches("example.test", "badexample.test", "443"));
    EXPECT_FALSE(no_proxy_matches("iam.example.test", "example.test", "443"));
}

TEST(NoProxy, ListsStarsPortsAndBlanks) {
    EXPECT_TRUE(no_proxy_matches("*", "anything", "443"));
    EXPECT_TRUE(no_proxy_matches(" a.test , b.test ", "b.test", "443"));
    EXPECT_FALSE(no_proxy_matches(",,", "b.test", "443"));
    EXPECT_FALSE(no_proxy_matches("", "b.test", "443"));
    EXPECT_TRUE(no_proxy_matches("b.test:443", "b.test", "443"));
    EXPECT_FALSE(no_proxy_matches("b.test:8443", "b.test", "443"));
}

TEST(NoProxy, AddressesAndBlocks) {
    EXPECT_TRUE(no_proxy_matches("127.0.0.1", "127.0.0.1", "443"));
    EXPECT_FALSE(no_proxy_matches("127.0.0.1", "127.0.0.2", "443"));
    EXPECT_TRUE(no_proxy_matches("10.0.0.0/8", "10.20.30.40", "443"));
    EXPECT_FALSE(no_proxy_matches("10.0.0.0/8", "11.0.0.1", "443"));
    EXPECT_FALSE(no_proxy_matches("10.0.0.0/8", "ten.example", "443"));
    EXPECT_TRUE(no_proxy_matches("::1", "0:0::1", "443"));
    EXPECT_TRUE(no_proxy_matches("[::1]:443", "::1", "443"));
    EXPECT_TRUE(no_proxy_matches("fd00::/8", "fd12::5", "443"));
    EXPECT_FALSE(no_proxy_matches("fd00::/8", "10.0.0.1", "443"));
    // A name never matches an address, even one it might resolve to.
    EXPECT_FALSE(no_proxy_matches("localhost", "127.0.0.1", "443"));
}

TEST(ParseProxy, HostPortAndCredentials) {
    auto endpoint = parse_proxy({"http://us%3Aer:p%40ss@proxy.test:3128", "proxy"});
    ASSERT_TRUE(endpoint) << endpoint.error();
    EXPECT_EQ(endpoint->host, "proxy.test");
    EXPECT_EQ(endpoint->port, "3128");
    EXPECT_EQ(endpoint->authorization, basic_authorization("us:er", "p@ss"));
    EXPECT_EQ(endpoint->name(), "proxy.test:3128");
}

TEST(ParseProxy, DefaultsAndBareHostPort) {
    auto plain = parse_proxy({"http://proxy.test", "proxy"});
    ASSERT_TRUE(plain) << plain.error();
    EXPECT_EQ(plain->port, "80");
    EXPECT_EQ(plain->authorization, std::nullopt);

    auto bare = parse_proxy({"10.1.2.3:8080", "HTTPS_PROXY"});
    ASSERT_TRUE(bare) << bare.error();
    EXPECT_EQ(bare->host, "10.1.2.3");
    EXPECT_EQ(bare->port, "8080");

    auto v6 = parse_proxy({"http://[fd00::1]:3128/", "proxy"});
    ASSERT_TRUE(v6) << v6.error();
    EXPECT_EQ(v6->host, "fd00::1");
    EXPECT_EQ(v6->name(), "[fd00::1]:3128");
}

TEST(ParseProxy, ErrorsNameTheSourceAndNeverTheUrl) {
    auto https = parse_proxy({"https://user:hunter2@proxy.test:3128", "HTTPS_PROXY"});
    ASSERT_FALSE(https);
    EXPECT_NE(https.error().find("HTTPS_PROXY"), std::string::npos);
    EXPECT_NE(https.error().find("http://"), std::string::npos);
    EXPECT_EQ(https.error().find("hunter2"), std::string::npos);

    EXPECT_FALSE(parse_proxy({"http://proxy.test:99999", "proxy"}));
    EXPECT_FALSE(parse_proxy({"http://:3128", "proxy"}));
    EXPECT_FALSE(parse_proxy({"http://pro xy", "proxy"}));
}

TEST(ParseProxy, DescriptionsShowHostPortAndSourceOnly) {
    EXPECT_EQ(describe({"http://me:hunter2@10.0.0.1:3128", "HTTPS_PROXY"}),
              "proxy 10.0.0.1:3128 (from HTTPS_PROXY)");
    auto bad = describe({"ftp://me:hunter2@10.0.0.1", "proxy"});
    EXPECT_TRUE(bad.starts_with("an unusable proxy: proxy must be an http://")) << bad;
    EXPECT_EQ(bad.find("hunter2"), std::string::npos);
}

} // namespace
} // namespace iam_tokend
