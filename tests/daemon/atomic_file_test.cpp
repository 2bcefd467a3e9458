#include "atomic_file.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <sys/stat.h>

namespace iam_tokend {
namespace {

namespace fs = std::filesystem;

class AtomicFile : public testing::Test {
protected:
    void SetUp() override {
        folder_ = fs::temp_directory_path() /
                  ("iam-tokend-atomic-" + std::to_string(getpid()) + "-" +
                   testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::create_directories(folder_);
    }
    void TearDown() override { fs::remove_all(folder_); }

    static std::string read(const fs::path& path) {
        std::ifstream file(path);
        std::stringstream text;
        text << file.rdbuf();
        return text.str();
    }

    fs::path folder_;
};

TEST_F(AtomicFile, WritesTheContentWithTheMode) {
    auto path = (folder_ / "token").string();
    EXPECT_FALSE(write_file_atomically(path, "first", 0640));
    EXPECT_EQ(read(path), "first");
    struct stat info {};
    ASSERT_EQ(stat(path.c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 07777, 0640U);
}

TEST_F(AtomicFile, ReplacesTheOldFileAndLeavesNoTemporaryFile) {
    auto path = (folder_ / "token").string();
    ASSERT_FALSE(write_file_atomically(path, "a much longer first content", 0600));
    ASSERT_FALSE(write_file_atomically(path, "second", 0600));
    EXPECT_EQ(read(path), "second");
    EXPECT_EQ(std::distance(fs::directory_iterator(folder_), fs::directory_iterator()), 1);
}

TEST_F(AtomicFile, SaysWhatFailedWithoutTheContent) {
    auto path = (folder_ / "missing" / "token").string();
    auto problem = write_file_atomically(path, "secret-content", 0600);
    ASSERT_TRUE(problem);
    EXPECT_NE(problem->find((folder_ / "missing").string()), std::string::npos) << *problem;
    EXPECT_NE(problem->find("No such file or directory"), std::string::npos) << *problem;
    EXPECT_EQ(problem->find("secret-content"), std::string::npos);
}

} // namespace
} // namespace iam_tokend
