#include "secret.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include <sys/stat.h>

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

    // Secret files must be private to their owner, so they are made 0600.
    std::string write(const std::string& name, std::string_view text) const {
        fs::path file = path_ / name;
        std::ofstream(file, std::ios::binary) << text;
        fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write);
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

TEST(SecretTest, FileThatGroupOrOthersMayUseIsRefusedWithItsMode) {
    TempDir dir;
    std::string path = dir.write("apikey", marker);
    for (mode_t mode : {0640, 0620, 0604, 0602, 0644, 0660}) {
        ASSERT_EQ(::chmod(path.c_str(), mode), 0);
        SecretResult result = load_secret(file_source(path));
        EXPECT_FALSE(result.ok()) << std::oct << mode;
        EXPECT_TRUE(result.value.empty());
        std::array<char, 8> octal{};
        std::snprintf(octal.data(), octal.size(), "%04o", static_cast<unsigned>(mode));
        EXPECT_EQ(result.error,
                  "api_key_file " + path + ": mode " + octal.data() +
                      " lets group or others read or write the secret; make it 0600 or 0400");
        expect_no_marker(result);
    }
}

TEST(SecretTest, FileOnlyItsOwnerMayUseIsRead) {
    TempDir dir;
    std::string path = dir.write("apikey", marker);
    // Execute bits grant nothing on a file that is only read.
    for (mode_t mode : {0400, 0600, 0700, 0610, 0601}) {
        ASSERT_EQ(::chmod(path.c_str(), mode), 0);
        SecretResult result = load_secret(file_source(path));
        ASSERT_TRUE(result.ok()) << std::oct << mode << ": " << result.error;
        EXPECT_EQ(result.value, marker);
    }
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

TEST(SecretTest, CredentialMayShowGroupReadButNotOthers) {
    // systemd's ACL on a credential shows as group read (0440); others'
    // bits still mean what they say.
    TempDir dir;
    std::string path = dir.write("iam-apikey", marker);
    ScopedEnv env("CREDENTIALS_DIRECTORY", dir.path().c_str());
    SecretSource source{SecretSource::Kind::credential, "iam-apikey", "api_key_credential"};

    ASSERT_EQ(::chmod(path.c_str(), 0440), 0);
    SecretResult acl_mask = load_secret(source);
    ASSERT_TRUE(acl_mask.ok()) << acl_mask.error;
    EXPECT_EQ(acl_mask.value, marker);

    ASSERT_EQ(::chmod(path.c_str(), 0404), 0);
    SecretResult world = load_secret(source);
    EXPECT_FALSE(world.ok());
    EXPECT_EQ(world.error,
              "api_key_credential iam-apikey (" + path +
                  "): mode 0404 lets others read or write the secret; make it 0600 or 0400");
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
