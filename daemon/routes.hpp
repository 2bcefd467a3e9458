// The local API (DESIGN §3): from a request line to a reply, with no
// knowledge of sockets or of HTTP framing, which stay in local_server.
#pragma once

#include "token_source.hpp"

#include <boost/asio/awaitable.hpp>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <sys/types.h>

namespace iam_tokend {

// A client's wait for a token that does not exist yet, unless it says
// otherwise with `wait=`, and the longest wait it may ask for.
inline constexpr Seconds default_client_wait{10};
inline constexpr Seconds max_client_wait{300};

// The all-ones id: what a peer's ids stay at when the kernel could not
// tell them. No allow list can contain it.
inline constexpr uid_t unknown_id = static_cast<uid_t>(-1);

// The credentials of the process at the other end of a connection.
struct Peer {
    pid_t pid = 0;
    uid_t uid = unknown_id;
    gid_t gid = unknown_id;
    std::vector<gid_t> groups; // supplementary groups
};

// The daemon's token sources by profile name; replaced whole on reload.
struct Profiles {
    std::map<std::string, std::shared_ptr<TokenSource>> sources;
    std::string default_name;
};

class Metrics;

struct LocalRequest {
    std::string method;
    std::string target;
};

struct LocalReply {
    unsigned status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
};

class Router {
public:
    // `metrics`, when given, is served at GET /metrics and must outlive the
    // router.
    explicit Router(const Profiles& profiles, const Metrics* metrics = nullptr)
        : profiles_(profiles),
          metrics_(metrics) {}

    boost::asio::awaitable<LocalReply> handle(LocalRequest request, Peer peer);

    // The reply to a request the server could not parse.
    static LocalReply error(unsigned status, std::string_view code, std::string_view message);

private:
    boost::asio::awaitable<LocalReply> token(std::string profile,
                                             Seconds min_valid,
                                             Seconds wait,
                                             std::string format,
                                             std::string kind, // "iam" or "uaa"
                                             Peer peer);
    boost::asio::awaitable<LocalReply> refresh(std::string profile, Seconds wait, Peer peer);
    LocalReply health() const;
    LocalReply status() const;
    LocalReply metrics() const;
    std::shared_ptr<TokenSource> find(const std::string& name) const;

    const Profiles& profiles_;
    const Metrics* metrics_;
};

} // namespace iam_tokend
