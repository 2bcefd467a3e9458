#include "config.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace iam_tokend {
namespace {

namespace fs = std::filesystem;

// A profile section with only what is required, to build configs around.
constexpr const char* minimal_profile =
    R"({"iam_url": "https://iam.example.test/identity/token", "api_key_env": "KEY"})";

std::string with_profile(std::string_view profile_body) {
    return R"({"profiles": {"default": )" + std::string(profile_body) + "}}";
}

// Succeeds when some problem is about `path` and mentions `fragment`.
testing::AssertionResult
has_problem(const ConfigResult& result, std::string_view path, std::string_view fragment = "") {
    std::string prefix = path.empty() ? "" : std::string(path) + ": ";
    for (const std::string& problem : result.problems) {
        if (problem.starts_with(prefix) && problem.find(fragment) != std::string::npos) {
            return testing::AssertionSuccess();
        }
    }
    auto failure = testing::AssertionFailure();
    failure << "no problem \"" << prefix << "...\" mentioning \"" << fragment << "\"; got:";
    for (const std::string& problem : result.problems) {
        failure << "\n  " << problem;
    }
    return failure;
}

std::string all_problems(const ConfigResult& result) {
    std::string text;
    for (const std::string& problem : result.problems) {
        text += problem + "\n";
    }
    return text;
}

const Profile& default_profile_of(const ConfigResult& result) {
    return result.config->profiles.at(result.config->default_profile);
}

// A fresh directory under the test temp dir, removed afterwards.
class TempDir {
public:
    TempDir() {
        std::string pattern = testing::TempDir() + "config_test_XXXXXX";
        path_ = ::mkdtemp(pattern.data());
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir() { fs::remove_all(path_); }

    const fs::path& path() const { return path_; }

    fs::path write(const std::string& name, std::string_view text) const {
        fs::path file = path_ / name;
        std::ofstream(file) << text;
        return file;
    }

private:
    fs::path path_;
};

TEST(ConfigTest, FullConfigSetsEveryKey) {
    const char* text = R"({
      "socket": {"path": "/run/t/t.sock", "mode": "0600", "group": "iam-token"},
      "log": {"level": "debug", "format": "journal"},
      "state_dir": "/var/lib/t",
      "startup_timeout_s": 12.5,
      "default_profile": "prod",
      "profiles": {
        "prod": {
          "iam_url": "https://iam.example.test:8443/identity/token",
          "grant": "apikey",
          "api_key_file": "/etc/t/apikey",
          "client_id": "cid", "client_secret": "csecret",
          "response_type": "cloud_iam,uaa",
          "ca_file": "/etc/t/ca.pem",
          "proxy": "http://user:pw@proxy.example.test:3128",
          "timeouts": {"connect_s": 3, "request_s": 7.5},
          "refresh": {"at_fraction": 0.7, "jitter_fraction": 0.1, "min_valid_s": 0,
                      "backoff_initial_s": 0.5, "backoff_max_s": 90},
          "allow": {"uids": [0, 1000], "gids": [42]},
          "sink": {"path": "/run/t/token", "mode": "0644", "format": "header"}
        },
        "other": {"iam_url": "https://iam.example.test/identity/token",
                  "api_key_credential": "other-key"}
      }
    })";

    ConfigResult result = parse_config(text);
    ASSERT_TRUE(result.config) << all_problems(result);
    EXPECT_TRUE(result.problems.empty());
    const Config& config = *result.config;

    EXPECT_EQ(config.socket.path, "/run/t/t.sock");
    EXPECT_EQ(config.socket.mode, 0600U);
    EXPECT_EQ(config.socket.group, "iam-token");
    EXPECT_EQ(config.log.level, "debug");
    EXPECT_EQ(config.log.format, LogFormat::journal);
    EXPECT_EQ(config.state_dir, "/var/lib/t");
    EXPECT_DOUBLE_EQ(config.startup_timeout.count(), 12.5);
    EXPECT_EQ(config.default_profile, "prod");
    ASSERT_EQ(config.profiles.size(), 2U);

    const Profile& prod = config.profiles.at("prod");
    EXPECT_EQ(prod.name, "prod");
    EXPECT_EQ(prod.iam_url, "https://iam.example.test:8443/identity/token");
    EXPECT_EQ(prod.grant, Grant::apikey);
    EXPECT_EQ(prod.secret.kind, SecretSource::Kind::file);
    EXPECT_EQ(prod.secret.name, "/etc/t/apikey");
    EXPECT_EQ(prod.secret.key, "api_key_file");
    EXPECT_EQ(prod.client_id, "cid");
    EXPECT_EQ(prod.client_secret, "csecret");
    EXPECT_EQ(prod.response_type, "cloud_iam,uaa");
    EXPECT_EQ(prod.ca_file, "/etc/t/ca.pem");
    EXPECT_EQ(prod.proxy, "http://user:pw@proxy.example.test:3128");
    EXPECT_DOUBLE_EQ(prod.timeouts.connect.count(), 3);
    EXPECT_DOUBLE_EQ(prod.timeouts.request.count(), 7.5);
    EXPECT_DOUBLE_EQ(prod.refresh.at_fraction, 0.7);
    EXPECT_DOUBLE_EQ(prod.refresh.jitter_fraction, 0.1);
    EXPECT_DOUBLE_EQ(prod.refresh.min_valid.count(), 0);
    EXPECT_DOUBLE_EQ(prod.refresh.backoff_initial.count(), 0.5);
    EXPECT_DOUBLE_EQ(prod.refresh.backoff_max.count(), 90);
    EXPECT_EQ(prod.allow.uids, (std::vector<uid_t>{0, 1000}));
    EXPECT_EQ(prod.allow.gids, (std::vector<gid_t>{42}));
    EXPECT_EQ(prod.sink.path, "/run/t/token");
    EXPECT_EQ(prod.sink.mode, 0644U);
    EXPECT_EQ(prod.sink.format, SinkFormat::header);

    const Profile& other = config.profiles.at("other");
    EXPECT_EQ(other.secret.kind, SecretSource::Kind::credential);
    EXPECT_EQ(other.secret.name, "other-key");
    EXPECT_EQ(other.secret.key, "api_key_credential");
}

TEST(ConfigTest, MinimalConfigGetsTheDefaults) {
    ConfigResult result = parse_config(with_profile(minimal_profile));
    ASSERT_TRUE(result.config) << all_problems(result);
    const Config& config = *result.config;
    const Config defaults;

    EXPECT_EQ(config.socket, defaults.socket);
    EXPECT_EQ(config.socket.path, "/run/iam-tokend/tokend.sock");
    EXPECT_EQ(config.socket.mode, 0660U);
    EXPECT_EQ(config.log, defaults.log);
    EXPECT_FALSE(config.state_dir);
    EXPECT_DOUBLE_EQ(config.startup_timeout.count(), 30);
    EXPECT_EQ(config.default_profile, "default");

    const Profile& profile = default_profile_of(result);
    EXPECT_EQ(profile.grant, Grant::apikey);
    EXPECT_EQ(profile.secret.kind, SecretSource::Kind::env);
    EXPECT_EQ(profile.secret.name, "KEY");
    EXPECT_EQ(profile.client_id, "bx");
    EXPECT_EQ(profile.client_secret, "bx");
    EXPECT_EQ(profile.response_type, "cloud_iam");
    EXPECT_FALSE(profile.ca_file);
    EXPECT_FALSE(profile.proxy);
    EXPECT_FALSE(profile.username);
    EXPECT_EQ(profile.timeouts, Timeouts{});
    EXPECT_EQ(profile.refresh, RefreshSettings{});
    EXPECT_DOUBLE_EQ(profile.refresh.min_valid.count(), 60);
    EXPECT_TRUE(profile.allow.uids.empty());
    EXPECT_EQ(profile.sink, SinkSettings{});
}

TEST(ConfigTest, NullMeansUnset) {
    ConfigResult result = parse_config(R"({
      "socket": {"group": null}, "state_dir": null,
      "profiles": {"default": {
        "iam_url": "https://iam.example.test/identity/token", "api_key_env": "KEY",
        "ca_file": null, "proxy": null, "sink": {"path": null}}}
    })");
    ASSERT_TRUE(result.config) << all_problems(result);
    EXPECT_FALSE(result.config->socket.group);
    EXPECT_FALSE(result.config->state_dir);
    EXPECT_FALSE(default_profile_of(result).ca_file);
    EXPECT_FALSE(default_profile_of(result).proxy);
    EXPECT_FALSE(default_profile_of(result).sink.path);
}

TEST(ConfigTest, CommentsAndTrailingCommasAreAccepted) {
    ConfigResult result = parse_config(R"({
      // the only profile
      "profiles": {
        "default": {
          "iam_url": "https://iam.example.test/identity/token", /* inline */
          "api_key_env": "KEY",
          "allow": {"uids": [1, 2,],},
        },
      },
    })");
    ASSERT_TRUE(result.config) << all_problems(result);
    EXPECT_EQ(default_profile_of(result).allow.uids, (std::vector<uid_t>{1, 2}));
}

TEST(ConfigTest, SecondsMayBeFractional) {
    ConfigResult result = parse_config(with_profile(R"({
      "iam_url": "https://iam.example.test/identity/token", "api_key_env": "KEY",
      "refresh": {"min_valid_s": 1, "backoff_initial_s": 0.2, "backoff_max_s": 2}})"));
    ASSERT_TRUE(result.config) << all_problems(result);
    const RefreshSettings& refresh = default_profile_of(result).refresh;
    EXPECT_DOUBLE_EQ(refresh.min_valid.count(), 1);
    EXPECT_DOUBLE_EQ(refresh.backoff_initial.count(), 0.2);
    EXPECT_DOUBLE_EQ(refresh.backoff_max.count(), 2);
}

TEST(ConfigTest, UnknownTopLevelKeyIsNamed) {
    ConfigResult result = parse_config(R"({"sockte": {}, "profiles": {"default": )" +
                                       std::string(minimal_profile) + "}}");
    EXPECT_FALSE(result.config);
    ASSERT_EQ(result.problems.size(), 1U) << all_problems(result);
    EXPECT_EQ(result.problems[0], "sockte: unknown key");
}

TEST(ConfigTest, UnknownNestedKeyIsNamedWithItsPath) {
    ConfigResult result = parse_config(with_profile(R"({
      "iam_url": "https://iam.example.test/identity/token", "api_key_env": "KEY",
      "refrsh": {}, "refresh": {"at_fractoin": 0.5}})"));
    EXPECT_FALSE(result.config);
    EXPECT_TRUE(has_problem(result, "profiles.default.refrsh", "unknown key"));
    EXPECT_TRUE(has_problem(result, "profiles.default.refresh.at_fractoin", "unknown key"));
    EXPECT_EQ(result.problems.size(), 2U) << all_problems(result);
}

TEST(ConfigTest, WrongTypeNamesKeyAndWhatWasFound) {
    ConfigResult result = parse_config(R"({"socket": {"mode": 660, "path": true},
      "log": [], "profiles": {"default": )" +
                                       std::string(minimal_profile) + "}}");
    EXPECT_FALSE(result.config);
    EXPECT_TRUE(has_problem(result, "socket.mode", R"(expected a string like "0660", got number)"));
    EXPECT_TRUE(has_problem(result, "socket.path", "expected a string, got boolean"));
    EXPECT_TRUE(has_problem(result, "log", "expected an object, got array"));
}

TEST(ConfigTest, SecondsMustBeNumbersAboveZero) {
    ConfigResult result = parse_config(R"({"startup_timeout_s": "30",
      "profiles": {"default": {
        "iam_url": "https://iam.example.test/identity/token", "api_key_env": "KEY",
        "timeouts": {"connect_s": 0, "request_s": -1},
        "refresh": {"min_valid_s": -0.5, "backoff_initial_s": 1e9}}}})");
    EXPECT_FALSE(result.config);
    EXPECT_TRUE(
        has_problem(result, "startup_timeout_s", "expected a number of seconds, got string"));
    EXPECT_TRUE(has_problem(result, "profiles.default.timeouts.connect_s", "greater than 0"));
    EXPECT_TRUE(has_problem(result, "profiles.default.timeouts.request_s", "greater than 0"));
    EXPECT_TRUE(has_problem(result, "profiles.default.refresh.min_valid_s", "negative"));
    EXPECT_TRUE(has_problem(result, "profiles.default.refresh.backoff_initial_s", "at most"));
}

TEST(ConfigTest, BackoffMaxMustNotBeBelowInitial) {
    ConfigResult result = parse_config(with_profile(R"({
      "iam_url": "https://iam.example.test/identity/token", "api_key_env": "KEY",
      "refresh": {"backoff_initial_s": 10, "backoff_max_s": 5}})"));
    EXPECT_FALSE(result.config);
    EXPECT_TRUE(has_problem(result, "profiles.default.refresh.backoff_max_s", "backoff_initial_s"));
}

TEST(ConfigTest, MissingIamUrlIsReported) {
    ConfigResult result = parse_config(with_profile(R"({"api_key_env": "KEY"})"));
    EXPECT_FALSE(result.config);
    ASSERT_EQ(result.problems.size(), 1U) << all_problems(result);
    EXPECT_EQ(result.problems[0], "profiles.default.iam_url: is required");
}

TEST(ConfigTest, BadIamUrlsAreReported) {
    struct Case {
        const char* url;
        const char* fragment;
    };
    const auto cases = std::to_array<Case>({
        {"http://iam.example.test/identity/token", "https"},
        {"not a url", "not a valid absolute URL"},
        {"/identity/token", "not a valid absolute URL"},
        {"https:///identity/token", "no host"},
        {"https://user:pw@iam.example.test/identity/token", "user info"},
        {"https://iam.example.test/identity/token#top", "fragment"},
    });
    for (const Case& c : cases) {
        ConfigResult result = parse_config(
            with_profile(R"({"api_key_env": "KEY", "iam_url": ")" + std::string(c.url) + "\"}"));
        EXPECT_FALSE(result.config) << c.url;
        EXPECT_TRUE(has_problem(result, "profiles.default.iam_url", c.fragment)) << c.url;
    }
}

TEST(ConfigTest, UrlMessagesDoNotRepeatTheUrl) {
    // A URL may carry a password; the message describes the fault only.
    ConfigResult result = parse_config(with_profile(R"({"api_key_env": "KEY",
      "iam_url": "https://user:hunter2@iam.example.test/token",
      "proxy": "https://user:hunter3@proxy.example.test:3128"})"));
    EXPECT_EQ(result.problems.size(), 2U) << all_problems(result);
    EXPECT_EQ(all_problems(result).find("hunter"), std::string::npos) << all_problems(result);
}

TEST(ConfigTest, ProxyMustBeAnHttpUrlWithHost) {
    const auto bad = std::to_array<const char*>({"https://proxy.example.test:3128",
                                                 "proxy.example.test:3128",
                                                 "http://proxy.example.test:3128/path",
                                                 "http://:3128"});
    for (const char* proxy : bad) {
        ConfigResult result = parse_config(with_profile(
            R"({"iam_url": "https://iam.example.test/t", "api_key_env": "KEY", "proxy": ")" +
            std::string(proxy) + "\"}"));
        EXPECT_FALSE(result.config) << proxy;
        EXPECT_TRUE(has_problem(result, "profiles.default.proxy")) << proxy;
    }

    ConfigResult good = parse_config(with_profile(
        R"({"iam_url": "https://iam.example.test/t", "api_key_env": "KEY",
            "proxy": "http://proxy.example.test:3128/"})"));
    EXPECT_TRUE(good.config) << all_problems(good);
}

TEST(ConfigTest, BadModeStringsAreReported) {
    const auto bad =
        std::to_array<const char*>({"0999", "rw-rw----", "", "1777", "07777", "0o660"});
    for (const char* mode : bad) {
        ConfigResult result =
            parse_config(R"({"socket": {"mode": ")" + std::string(mode) +
                         R"("}, "profiles": {"default": )" + minimal_profile + "}}");
        EXPECT_FALSE(result.config) << mode;
        EXPECT_TRUE(has_problem(result, "socket.mode", "\"" + std::string(mode) + "\"")) << mode;
    }

    ConfigResult short_form =
        parse_config(R"({"socket": {"mode": "660"}, "profiles": {"default": )" +
                     std::string(minimal_profile) + "}}");
    ASSERT_TRUE(short_form.config) << all_problems(short_form);
    EXPECT_EQ(short_form.config->socket.mode, 0660U);
}

TEST(ConfigTest, NoSecretSourceIsReported) {
    ConfigResult result =
        parse_config(with_profile(R"({"iam_url": "https://iam.example.test/t"})"));
    EXPECT_FALSE(result.config);
    ASSERT_EQ(result.problems.size(), 1U) << all_problems(result);
    EXPECT_EQ(result.problems[0],
              "profiles.default: no API key source "
              "(set api_key_file, api_key_env or api_key_credential)");
}

TEST(ConfigTest, TwoSecretSourcesAreReportedByName) {
    ConfigResult result = parse_config(with_profile(
        R"({"iam_url": "https://iam.example.test/t", "api_key_env": "KEY",
            "api_key_file": "/etc/key"})"));
    EXPECT_FALSE(result.config);
    ASSERT_EQ(result.problems.size(), 1U) << all_problems(result);
    EXPECT_TRUE(has_problem(result, "profiles.default", "api_key_file and api_key_env"));
}

TEST(ConfigTest, SecretSourceNamesAreChecked) {
    ConfigResult result = parse_config(R"({"profiles": {
      "a": {"iam_url": "https://iam.example.test/t", "api_key_credential": "../key"},
      "b": {"iam_url": "https://iam.example.test/t", "api_key_env": ""},
      "c": {"iam_url": "https://iam.example.test/t", "api_key_file": 7}},
      "default_profile": "a"})");
    EXPECT_FALSE(result.config);
    EXPECT_TRUE(has_problem(result, "profiles.a.api_key_credential", "no '/'"));
    EXPECT_TRUE(has_problem(result, "profiles.b.api_key_env", "variable name"));
    EXPECT_TRUE(has_problem(result, "profiles.c.api_key_file", "expected a string, got number"));
}

TEST(ConfigTest, PasswordGrantNeedsUsernameAndPasswordSource) {
    ConfigResult good = parse_config(with_profile(
        R"({"iam_url": "https://iam.example.test/t", "grant": "password",
            "username": "svc", "password_file": "/etc/t/password"})"));
    ASSERT_TRUE(good.config) << all_problems(good);
    const Profile& profile = default_profile_of(good);
    EXPECT_EQ(profile.grant, Grant::password);
    EXPECT_EQ(profile.username, "svc");
    EXPECT_EQ(profile.secret.kind, SecretSource::Kind::file);
    EXPECT_EQ(profile.secret.name, "/etc/t/password");
    EXPECT_EQ(profile.secret.key, "password_file");

    ConfigResult bad = parse_config(with_profile(
        R"({"iam_url": "https://iam.example.test/t", "grant": "password",
            "api_key_env": "KEY"})"));
    EXPECT_FALSE(bad.config);
    EXPECT_TRUE(has_problem(bad, "profiles.default.username", "required"));
    EXPECT_TRUE(has_problem(bad, "profiles.default", "no password source"));
    EXPECT_TRUE(has_problem(bad, "profiles.default.api_key_env", "\"apikey\""));
}

TEST(ConfigTest, PasswordKeysAreRefusedWithApiKeyGrant) {
    ConfigResult result = parse_config(with_profile(
        R"({"iam_url": "https://iam.example.test/t", "api_key_env": "KEY",
            "username": "svc", "password_env": "PW"})"));
    EXPECT_FALSE(result.config);
    EXPECT_TRUE(has_problem(result, "profiles.default.username", "\"password\""));
    EXPECT_TRUE(has_problem(result, "profiles.default.password_env", "\"password\""));
}

TEST(ConfigTest, FractionsOutOfRangeAreReported) {
    const auto bad_at = std::to_array<const char*>({"0", "1", "1.5", "-0.2"});
    for (const char* at : bad_at) {
        ConfigResult result = parse_config(with_profile(
            R"({"iam_url": "https://iam.example.test/t", "api_key_env": "KEY",
                "refresh": {"at_fraction": )" +
            std::string(at) + "}}"));
        EXPECT_FALSE(result.config) << at;
        EXPECT_TRUE(has_problem(result, "profiles.default.refresh.at_fraction", "(0, 1)")) << at;
    }

    ConfigResult jitter = parse_config(with_profile(
        R"({"iam_url": "https://iam.example.test/t", "api_key_env": "KEY",
            "refresh": {"jitter_fraction": 0.5}})"));
    EXPECT_TRUE(has_problem(jitter, "profiles.default.refresh.jitter_fraction", "[0, 0.5)"));

    // Each fraction is fine alone, but 0.9 + 0.1 reaches the end of the life.
    ConfigResult sum = parse_config(with_profile(
        R"({"iam_url": "https://iam.example.test/t", "api_key_env": "KEY",
            "refresh": {"at_fraction": 0.9, "jitter_fraction": 0.1}})"));
    EXPECT_FALSE(sum.config);
    EXPECT_TRUE(has_problem(sum, "profiles.default.refresh.jitter_fraction", "between 0 and 1"));

    ConfigResult no_jitter = parse_config(with_profile(
        R"({"iam_url": "https://iam.example.test/t", "api_key_env": "KEY",
            "refresh": {"at_fraction": 0.95, "jitter_fraction": 0}})"));
    EXPECT_TRUE(no_jitter.config) << all_problems(no_jitter);
}

TEST(ConfigTest, ChoicesAreChecked) {
    ConfigResult result = parse_config(R"({"log": {"level": "verbose", "format": "json"},
      "profiles": {"default": {
        "iam_url": "https://iam.example.test/t", "api_key_env": "KEY",
        "response_type": "uaa", "sink": {"format": "xml"}}}})");
    EXPECT_FALSE(result.config);
    EXPECT_TRUE(has_problem(result, "log.level", R"("verbose" is not one of "trace")"));
    EXPECT_TRUE(has_problem(result, "log.format", R"("json")"));
    EXPECT_TRUE(has_problem(result, "profiles.default.response_type", R"("cloud_iam,uaa")"));
    EXPECT_TRUE(has_problem(result, "profiles.default.sink.format", R"("xml")"));

    ConfigResult grant = parse_config(with_profile(
        R"({"iam_url": "https://iam.example.test/t", "api_key_env": "KEY", "grant": "pw"})"));
    ASSERT_EQ(grant.problems.size(), 1U) << all_problems(grant);
    EXPECT_TRUE(has_problem(grant, "profiles.default.grant", R"("pw")"));
}

TEST(ConfigTest, IdsMustBeNonNegativeIntegers) {
    ConfigResult result = parse_config(with_profile(
        R"({"iam_url": "https://iam.example.test/t", "api_key_env": "KEY",
            "allow": {"uids": [1000, -1, "root", 1.5], "gids": 5}})"));
    EXPECT_FALSE(result.config);
    EXPECT_TRUE(has_problem(result, "profiles.default.allow.uids[1]", "negative"));
    EXPECT_TRUE(has_problem(result, "profiles.default.allow.uids[2]", "got string"));
    EXPECT_TRUE(has_problem(result, "profiles.default.allow.uids[3]", "whole number"));
    EXPECT_TRUE(has_problem(result, "profiles.default.allow.gids", "expected an array"));
    EXPECT_FALSE(has_problem(result, "profiles.default.allow.uids[0]"));
}

TEST(ConfigTest, ProfilesAreRequiredAndNotEmpty) {
    ConfigResult missing = parse_config("{}");
    EXPECT_FALSE(missing.config);
    EXPECT_TRUE(has_problem(missing, "profiles", "required"));

    ConfigResult empty = parse_config(R"({"profiles": {}})");
    EXPECT_FALSE(empty.config);
    EXPECT_TRUE(has_problem(empty, "profiles", "at least one"));
}

TEST(ConfigTest, UnknownDefaultProfileIsReported) {
    ConfigResult result = parse_config(R"({"default_profile": "prod", "profiles": {"default": )" +
                                       std::string(minimal_profile) + "}}");
    EXPECT_FALSE(result.config);
    ASSERT_EQ(result.problems.size(), 1U) << all_problems(result);
    EXPECT_EQ(result.problems[0], R"(default_profile: no profile is named "prod")");
}

TEST(ConfigTest, SingleProfileIsTheDefaultWhenNoneIsNamed) {
    ConfigResult result =
        parse_config(R"({"profiles": {"prod": )" + std::string(minimal_profile) + "}}");
    ASSERT_TRUE(result.config) << all_problems(result);
    EXPECT_EQ(result.config->default_profile, "prod");
}

TEST(ConfigTest, SeveralProfilesNeedADefault) {
    std::string profiles =
        R"("a": )" + std::string(minimal_profile) + R"(, "b": )" + minimal_profile;

    ConfigResult unnamed = parse_config(R"({"profiles": {)" + profiles + "}}");
    EXPECT_FALSE(unnamed.config);
    EXPECT_TRUE(has_problem(unnamed, "default_profile", "not set"));

    ConfigResult named =
        parse_config(R"({"default_profile": "b", "profiles": {)" + profiles + "}}");
    ASSERT_TRUE(named.config) << all_problems(named);
    EXPECT_EQ(named.config->default_profile, "b");
}

TEST(ConfigTest, BadProfileNamesAreReported) {
    const auto bad = std::to_array<const char*>({"a/b", "with space", "..", "", "caf\xc3\xa9"});
    for (const char* name : bad) {
        ConfigResult result = parse_config(R"({"profiles": {")" + std::string(name) + R"(": )" +
                                           minimal_profile + "}}");
        EXPECT_FALSE(result.config) << name;
        EXPECT_TRUE(has_problem(result, "profiles." + std::string(name), "profile name")) << name;
    }

    ConfigResult good =
        parse_config(R"({"profiles": {"Prod_eu-1.a": )" + std::string(minimal_profile) + "}}");
    EXPECT_TRUE(good.config) << all_problems(good);
}

TEST(ConfigTest, SeveralProblemsAreReportedTogether) {
    ConfigResult result = parse_config(R"({
      "socket": {"mode": "0999"},
      "log": {"level": "loud"},
      "extra": 1,
      "profiles": {
        "a": {"iam_url": "http://iam.example.test/t"},
        "b": {"api_key_env": "KEY", "refresh": {"at_fraction": 2}}
      }
    })");
    EXPECT_FALSE(result.config);
    EXPECT_TRUE(has_problem(result, "extra", "unknown key"));
    EXPECT_TRUE(has_problem(result, "socket.mode"));
    EXPECT_TRUE(has_problem(result, "log.level"));
    EXPECT_TRUE(has_problem(result, "profiles.a.iam_url", "https"));
    EXPECT_TRUE(has_problem(result, "profiles.a", "no API key source"));
    EXPECT_TRUE(has_problem(result, "profiles.b.iam_url", "required"));
    EXPECT_TRUE(has_problem(result, "profiles.b.refresh.at_fraction"));
    EXPECT_TRUE(has_problem(result, "default_profile"));
    EXPECT_EQ(result.problems.size(), 8U) << all_problems(result);
}

TEST(ConfigTest, NotJsonGivesLineAndColumn) {
    ConfigResult result = parse_config("{\n  \"profiles\": {\n    \"a\": x\n  }\n}");
    EXPECT_FALSE(result.config);
    ASSERT_EQ(result.problems.size(), 1U);
    EXPECT_TRUE(result.problems[0].starts_with("not valid JSON")) << result.problems[0];
    EXPECT_NE(result.problems[0].find("line 3, column 10"), std::string::npos)
        << result.problems[0];

    EXPECT_TRUE(has_problem(parse_config("   \n"), "", "empty"));
    EXPECT_TRUE(has_problem(parse_config(R"({"profiles": {}} extra)"), "", "not valid JSON"));
    EXPECT_TRUE(has_problem(parse_config("[1, 2]"), "", "JSON object, got array"));
}

TEST(ConfigTest, RelativePathsAreResolvedAgainstTheBaseDir) {
    ConfigResult result = parse_config(R"({
      "socket": {"path": "run/t.sock"}, "state_dir": "./state",
      "profiles": {
        "a": {"iam_url": "https://iam.example.test/t", "api_key_file": "keys/a",
              "ca_file": "../ca.pem", "sink": {"path": "/abs/token"}},
        "b": {"iam_url": "https://iam.example.test/t", "grant": "password",
              "username": "u", "password_file": "pw"}},
      "default_profile": "a"})",
                                       "/etc/t");
    ASSERT_TRUE(result.config) << all_problems(result);
    const Config& config = *result.config;
    EXPECT_EQ(config.socket.path, "/etc/t/run/t.sock");
    EXPECT_EQ(config.state_dir, "/etc/t/state");
    EXPECT_EQ(config.profiles.at("a").secret.name, "/etc/t/keys/a");
    EXPECT_EQ(config.profiles.at("a").ca_file, "/etc/ca.pem");
    EXPECT_EQ(config.profiles.at("a").sink.path, "/abs/token");
    EXPECT_EQ(config.profiles.at("b").secret.name, "/etc/t/pw");
}

TEST(ConfigTest, EmptyBaseDirLeavesRelativePathsAlone) {
    ConfigResult result = parse_config(
        with_profile(R"({"iam_url": "https://iam.example.test/t", "api_key_file": "keys/a"})"));
    ASSERT_TRUE(result.config) << all_problems(result);
    EXPECT_EQ(default_profile_of(result).secret.name, "keys/a");
}

TEST(ConfigTest, LoadConfigResolvesAgainstTheFilesFolder) {
    TempDir dir;
    fs::path file = dir.write("config.json", with_profile(R"({
      "iam_url": "https://iam.example.test/t", "api_key_file": "apikey",
      "sink": {"path": "out/token"}})"));

    ConfigResult result = load_config(file.string());
    ASSERT_TRUE(result.config) << all_problems(result);
    EXPECT_EQ(default_profile_of(result).secret.name, (dir.path() / "apikey").string());
    EXPECT_EQ(default_profile_of(result).sink.path, (dir.path() / "out/token").string());
}

TEST(ConfigTest, LoadConfigReportsUnreadableFiles) {
    TempDir dir;
    ConfigResult missing = load_config((dir.path() / "nope.json").string());
    EXPECT_FALSE(missing.config);
    ASSERT_EQ(missing.problems.size(), 1U);
    EXPECT_EQ(missing.problems[0], "cannot read the file: No such file or directory");

    ConfigResult directory = load_config(dir.path().string());
    EXPECT_FALSE(directory.config);
    EXPECT_TRUE(has_problem(directory, "", "not a regular file"));

    fs::path broken = dir.write("broken.json", "{\"profiles\": ");
    ConfigResult not_json = load_config(broken.string());
    EXPECT_TRUE(has_problem(not_json, "", "not valid JSON"));
}

TEST(ConfigTest, SocketTimeoutsHaveDefaultsAndRefuseZero) {
    ConfigResult defaults = parse_config(with_profile(minimal_profile));
    ASSERT_TRUE(defaults.config) << all_problems(defaults);
    EXPECT_DOUBLE_EQ(defaults.config->socket.request_timeout.count(), 10);
    EXPECT_DOUBLE_EQ(defaults.config->socket.idle_timeout.count(), 60);

    ConfigResult set = parse_config(R"({"socket": {"request_timeout_s": 2.5, "idle_timeout_s": 7},
                                        "profiles": {"default": )" +
                                    std::string(minimal_profile) + "}}");
    ASSERT_TRUE(set.config) << all_problems(set);
    EXPECT_DOUBLE_EQ(set.config->socket.request_timeout.count(), 2.5);
    EXPECT_DOUBLE_EQ(set.config->socket.idle_timeout.count(), 7);

    ConfigResult zero = parse_config(R"({"socket": {"request_timeout_s": 0, "idle_timeout_s": "x"},
                                         "profiles": {"default": )" +
                                     std::string(minimal_profile) + "}}");
    EXPECT_FALSE(zero.config);
    EXPECT_TRUE(has_problem(zero, "socket.request_timeout_s", "greater than 0"));
    EXPECT_TRUE(has_problem(zero, "socket.idle_timeout_s", "a number of seconds"));
}

TEST(ConfigTest, EqualConfigsCompareEqual) {
    ConfigResult first = parse_config(with_profile(minimal_profile));
    ConfigResult second = parse_config(with_profile(minimal_profile));
    ASSERT_TRUE(first.config && second.config);
    EXPECT_EQ(*first.config, *second.config);

    second.config->profiles.at("default").refresh.min_valid = Seconds(5);
    EXPECT_NE(first.config->profiles.at("default"), second.config->profiles.at("default"));
    EXPECT_NE(*first.config, *second.config);
}

} // namespace
} // namespace iam_tokend
