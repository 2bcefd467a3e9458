#include "secret.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

namespace iam_tokend {
namespace {

namespace fs = std::filesystem;

// A value no message may ever contain.
constexpr const char* marker = "s3cr3t-VALUE-8d1f";

// A fresh directory under the test temp dir, removed afterwards.
class TempDir {
public:
    TempDir() {
        std::string pattern = testing::TempDir() + "secret_test_XXXXXX";
        path_ = ::mkdtemp(pattern.data());
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir() { fs::remove_all(path_); }

    const fs::path& path() const { return path_; }

    std::string write(const std::string& name, std::string_view text) const {
        fs::path file = path_ / name;
        std::ofstream(file, std::ios::binary) << text;
        return file.string();
    }

private:
    fs::path path_;
};

// Sets (or unsets) an environment variable for one test, then restores it.
class ScopedEnv {
public:
    ScopedEnv(std::string name, const char* value) : name_(std::move(name)) {
        if (const char* old = std::getenv(name_.c_str())) {
            old_ = old;
        }
        set(value);
    }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;
    ~ScopedEnv() { set(old_ ? old_->c_str() : nullptr); }

private:
    void set(const char* value) {
        if (value == nullptr) {
            ::unsetenv(name_.c_str());
        } else {
            ::setenv(name_.c_str(), value, 1);
        }
    }

    std::string name_;
    std::optional<std::string> old_;
};

SecretSource file_source(const std::string& path) {
    return {SecretSource::Kind::file, path, "api_key_file"};
}

void expect_no_marker(const SecretResult& result) {
    EXPECT_EQ(result.error.find(marker), std::string::npos) << result.error;
    EXPECT_EQ(result.error.find("s3cr3t"), std::string::npos) << result.error;
}

TEST(SecretTest, FileIsReadAndTrailingSpaceTrimmed) {
    TempDir dir;
    std::string path = dir.write("apikey", std::string(marker) + " \t\r\n\n");

    SecretResult result = load_secret(file_source(path));
    ASSERT_TRUE(result.ok()) << result.error;
    EXPECT_EQ(result.value, marker);
}

TEST(SecretTest, LeadingAndInnerSpaceIsKept) {
    TempDir dir;
    std::string path = dir.write("password", "  two words\n");

    SecretResult result = load_secret(file_source(path));
    ASSERT_TRUE(result.ok()) << result.error;
    EXPECT_EQ(result.value, "  two words");
}

TEST(SecretTest, MissingFileNamesKeyAndPath) {
    TempDir dir;
    std::string path = (dir.path() / "nope").string();

    SecretResult result = load_secret(file_source(path));
    EXPECT_FALSE(result.ok());
    EXPECT_TRUE(result.value.empty());
    EXPECT_EQ(result.error, "api_key_file " + path + ": No such file or directory");
}

TEST(SecretTest, EmptyOrBlankFileIsAnError) {
    TempDir dir;
    for (const char* content : {"", "\n", "  \r\n\t"}) {
        std::string path = dir.write("apikey", content);
        SecretResult result = load_secret(file_source(path));
        EXPECT_FALSE(result.ok()) << '"' << content << '"';
        EXPECT_EQ(result.error, "api_key_file " + path + ": the secret is empty");
    }
}

TEST(SecretTest, OversizedFileIsRefusedWithoutItsContent) {
    TempDir dir;
    std::string content;
    while (content.size() <= std::size_t{64} * 1024) {
        content += marker;
    }
    std::string path = dir.write("apikey", content);

    SecretResult result = load_secret(file_source(path));
    EXPECT_FALSE(result.ok());
    EXPECT_TRUE(result.value.empty());
    EXPECT_NE(result.error.find("larger than 65536 bytes"), std::string::npos) << result.error;
    expect_no_marker(result);
}

TEST(SecretTest, FileOfExactlyTheLimitIsRead) {
    TempDir dir;
    std::string path = dir.write("apikey", std::string(std::size_t{64} * 1024, 'k'));

    SecretResult result = load_secret(file_source(path));
    ASSERT_TRUE(result.ok()) << result.error;
    EXPECT_EQ(result.value.size(), 64U * 1024U);
}

TEST(SecretTest, DirectoryIsNotASecretFile) {
    TempDir dir;
    SecretResult result = load_secret(file_source(dir.path().string()));
    EXPECT_FALSE(result.ok());
    EXPECT_NE(result.error.find("not a regular file"), std::string::npos) << result.error;
}

TEST(SecretTest, EnvironmentVariableIsRead) {
    ScopedEnv env("IAM_TOKEND_TEST_KEY", (std::string(marker) + "\n").c_str());

    SecretResult result =
        load_secret({SecretSource::Kind::env, "IAM_TOKEND_TEST_KEY", "api_key_env"});
    ASSERT_TRUE(result.ok()) << result.error;
    EXPECT_EQ(result.value, marker);
}

TEST(SecretTest, UnsetOrEmptyVariableIsNamed) {
    SecretSource source{SecretSource::Kind::env, "IAM_TOKEND_TEST_KEY", "api_key_env"};
    {
        ScopedEnv env("IAM_TOKEND_TEST_KEY", nullptr);
        SecretResult result = load_secret(source);
        EXPECT_FALSE(result.ok());
        EXPECT_EQ(result.error, "api_key_env IAM_TOKEND_TEST_KEY: the variable is not set");
    }
    {
        ScopedEnv env("IAM_TOKEND_TEST_KEY", " \n");
        SecretResult result = load_secret(source);
        EXPECT_FALSE(result.ok());
        EXPECT_EQ(result.error, "api_key_env IAM_TOKEND_TEST_KEY: the secret is empty");
    }
}

TEST(SecretTest, CredentialIsReadFromCredentialsDirectory) {
    TempDir dir;
    dir.write("iam-apikey", std::string(marker) + "\n");
    ScopedEnv env("CREDENTIALS_DIRECTORY", dir.path().c_str());

    SecretResult result =
        load_secret({SecretSource::Kind::credential, "iam-apikey", "api_key_credential"});
    ASSERT_TRUE(result.ok()) << result.error;
    EXPECT_EQ(result.value, marker);
}

TEST(SecretTest, MissingCredentialNamesItsPath) {
    TempDir dir;
    ScopedEnv env("CREDENTIALS_DIRECTORY", dir.path().c_str());

    SecretResult result =
        load_secret({SecretSource::Kind::credential, "absent", "api_key_credential"});
    EXPECT_FALSE(result.ok());
    std::string path = (dir.path() / "absent").string();
    EXPECT_EQ(result.error, "api_key_credential absent (" + path + "): No such file or directory");
}

TEST(SecretTest, CredentialNeedsCredentialsDirectory) {
    ScopedEnv env("CREDENTIALS_DIRECTORY", nullptr);

    SecretResult result =
        load_secret({SecretSource::Kind::credential, "iam-apikey", "api_key_credential"});
    EXPECT_FALSE(result.ok());
    EXPECT_TRUE(result.error.starts_with("api_key_credential iam-apikey: "));
    EXPECT_NE(result.error.find("CREDENTIALS_DIRECTORY is not set"), std::string::npos)
        << result.error;
}

TEST(SecretTest, CredentialNameMayNotLeaveTheDirectory) {
    // The file exists one level up; the name must still be refused.
    TempDir dir;
    dir.write("outside", marker);
    fs::create_directory(dir.path() / "creds");
    ScopedEnv env("CREDENTIALS_DIRECTORY", (dir.path() / "creds").c_str());

    for (const char* name : {"../outside", "sub/key", "..", ""}) {
        SecretResult result =
            load_secret({SecretSource::Kind::credential, name, "api_key_credential"});
        EXPECT_FALSE(result.ok()) << name;
        EXPECT_TRUE(result.value.empty()) << name;
        EXPECT_NE(result.error.find("plain file name"), std::string::npos) << result.error;
        expect_no_marker(result);
    }
}

TEST(SecretTest, ErrorsNeverContainTheSecret) {
    // Every failing source here has the marker within reach.
    TempDir dir;
    std::string big = std::string(marker) + std::string(std::size_t{70} * 1024, 'x');
    std::string big_path = dir.write("big", big);
    ScopedEnv empty("IAM_TOKEND_TEST_EMPTY", "");
    ScopedEnv credentials("CREDENTIALS_DIRECTORY", dir.path().c_str());
    dir.write("blank", "   ");

    const auto failing = std::to_array<SecretSource>({
        file_source(big_path),
        {SecretSource::Kind::env, "IAM_TOKEND_TEST_EMPTY", "password_env"},
        {SecretSource::Kind::credential, "blank", "password_credential"},
        {SecretSource::Kind::credential,
         "../" + dir.path().filename().string() + "/big",
         "api_key_credential"},
    });
    for (const SecretSource& source : failing) {
        SecretResult result = load_secret(source);
        EXPECT_FALSE(result.ok()) << source.name;
        EXPECT_TRUE(result.error.starts_with(source.key + " ")) << result.error;
        expect_no_marker(result);
    }
}

} // namespace
} // namespace iam_tokend
