// The header-only client against a stand-in daemon: a thread that accepts
// one connection on a Unix socket in a temp folder and answers as told.
#include "local_client.hpp"

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace iam_tokend {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

constexpr milliseconds short_timeout{300};
constexpr milliseconds long_timeout{5000};

// Listens on `dir`/test.sock; serve() answers one connection with `reply`
// (or keeps it open without a word when `reply` is empty) and records the
// request it read.
class StandIn {
public:
    explicit StandIn(const fs::path& dir)
        : path_((dir / "test.sock").string()),
          fd_(socket(AF_UNIX, SOCK_STREAM, 0)) {
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path_.c_str());
        if (bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
            listen(fd_, 1) != 0) {
            throw std::runtime_error("cannot listen on " + path_);
        }
    }
    ~StandIn() {
        if (thread_.joinable()) {
            thread_.join();
        }
        close(fd_);
    }
    StandIn(const StandIn&) = delete;
    StandIn& operator=(const StandIn&) = delete;

    void serve(std::string reply, milliseconds hold = milliseconds{0}) {
        thread_ = std::thread([this, reply = std::move(reply), hold] {
            int peer = accept(fd_, nullptr, nullptr);
            std::array<char, 4096> buffer{};
            ssize_t got = recv(peer, buffer.data(), buffer.size(), 0);
            if (got > 0) {
                request_.assign(buffer.data(), static_cast<std::size_t>(got));
            }
            std::this_thread::sleep_for(hold);
            send(peer, reply.data(), reply.size(), MSG_NOSIGNAL);
            close(peer);
        });
    }

    // Only after the serving thread has finished.
    const std::string& request() {
        if (thread_.joinable()) {
            thread_.join();
        }
        return request_;
    }
    const std::string& path() const { return path_; }

private:
    std::string path_;
    int fd_ = -1;
    std::thread thread_;
    std::string request_;
};

class LocalClient : public ::testing::Test {
protected:
    void SetUp() override {
        std::string pattern = "/tmp/iam-tokend-client-XXXXXX";
        dir_ = mkdtemp(pattern.data());
    }
    void TearDown() override { fs::remove_all(dir_); }

    fs::path dir_;
};

TEST(LocalClientTarget, QueryFieldsBecomeTheTarget) {
    EXPECT_EQ(token_target({}), "/v1/token");
    EXPECT_EQ(token_target({.profile = "edge"}), "/v1/token/edge");
    EXPECT_EQ(token_target({.profile = "edge", .format = "raw", .kind = "uaa", .wait = "2"}),
              "/v1/token/edge?format=raw&kind=uaa&wait=2");
    EXPECT_EQ(token_target({.min_valid = "120"}), "/v1/token?min_valid=120");
}

TEST_F(LocalClient, ReadsStatusAndBodyAndSendsOneRequest) {
    StandIn daemon(dir_);
    daemon.serve("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n"
                 "Connection: close\r\n\r\ntok-123");

    auto reply = fetch_token({.profile = "p1", .format = "raw"}, daemon.path());

    EXPECT_EQ(reply.error, "");
    EXPECT_EQ(reply.status, 200);
    EXPECT_EQ(reply.body, "tok-123");
    EXPECT_TRUE(daemon.request().starts_with("GET /v1/token/p1?format=raw HTTP/1.1\r\n"))
        << daemon.request();
    EXPECT_NE(daemon.request().find("Connection: close\r\n"), std::string::npos);
}

TEST_F(LocalClient, AnErrorStatusIsAReplyNotAFailure) {
    StandIn daemon(dir_);
    std::string body = R"({"error":"token_unavailable","message":"no token"})";
    daemon.serve("HTTP/1.1 503 Service Unavailable\r\nContent-Length: " +
                 std::to_string(body.size()) + "\r\n\r\n" + body);

    auto reply = local_request(daemon.path(), "POST", "/v1/refresh", long_timeout);

    EXPECT_EQ(reply.error, "");
    EXPECT_EQ(reply.status, 503);
    EXPECT_EQ(reply.body, body);
    EXPECT_TRUE(daemon.request().starts_with("POST /v1/refresh HTTP/1.1\r\n"));
}

TEST_F(LocalClient, NoDaemonIsAClearError) {
    auto missing = (dir_ / "nobody.sock").string();
    auto reply = local_request(missing, "GET", "/v1/status", short_timeout);
    EXPECT_EQ(reply.status, 0);
    EXPECT_NE(reply.error.find("cannot connect to " + missing), std::string::npos) << reply.error;
}

TEST_F(LocalClient, ASilentDaemonRunsIntoTheTimeout) {
    StandIn daemon(dir_);
    daemon.serve("HTTP/1.1 200 OK\r\n\r\nlate", short_timeout * 3);

    auto started = std::chrono::steady_clock::now();
    auto reply = local_request(daemon.path(), "GET", "/v1/status", short_timeout);
    auto took = std::chrono::steady_clock::now() - started;

    EXPECT_EQ(reply.status, 0);
    EXPECT_NE(reply.error.find("no reply"), std::string::npos) << reply.error;
    EXPECT_LT(took, short_timeout * 2);
}

TEST_F(LocalClient, SomethingThatIsNotHttpIsRefused) {
    StandIn daemon(dir_);
    daemon.serve("SSH-2.0-OpenSSH_9.2\r\n");

    auto reply = local_request(daemon.path(), "GET", "/v1/status", long_timeout);

    EXPECT_EQ(reply.status, 0);
    EXPECT_NE(reply.error.find("not HTTP"), std::string::npos) << reply.error;
}

TEST_F(LocalClient, TheSocketComesFromTheEnvironmentWhenSet) {
    auto path = (dir_ / "from-env.sock").string();
    ASSERT_EQ(setenv(socket_environment_variable, path.c_str(), 1), 0);
    EXPECT_EQ(client_socket_path(), path);

    ASSERT_EQ(setenv(socket_environment_variable, "", 1), 0);
    EXPECT_EQ(client_socket_path(), default_socket_path);
    unsetenv(socket_environment_variable);
    EXPECT_EQ(client_socket_path(), default_socket_path);
}

} // namespace
} // namespace iam_tokend
