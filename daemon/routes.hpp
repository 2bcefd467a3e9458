// The local API (DESIGN §3): from a request line to a reply, with no
// knowledge of sockets or of HTTP framing, which stay in local_server.
#pragma once

#include "token_source.hpp"

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <sys/types.h>

namespace iam_tokend {

// A client's wait for a token that does not exist yet, unless it says
// otherwise with `wait=`, and the longest wait it may ask for.
inline constexpr Seconds default_client_wait{10};
inline constexpr Seconds max_client_wait{300};

// The credentials of the process at the other end of a connection.
struct Peer {
    pid_t pid = 0;
    uid_t uid = 0;
    gid_t gid = 0;
};

// The daemon's token sources by profile name; replaced whole on reload.
struct Profiles {
    std::map<std::string, std::shared_ptr<TokenSource>> sources;
    std::string default_name;
};

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

struct RenderedReply; // rendered_reply.hpp

// What a request asks for, once its method, path and query are checked.
struct Route {
    std::string resource; // "token", "refresh", "health" or "status"
    std::string profile;
    Seconds min_valid{0};
    Seconds wait = default_client_wait;
    std::string format = "json";
};

class Router {
public:
    explicit Router(const Profiles& profiles) : profiles_(profiles) {}

    boost::asio::awaitable<LocalReply> handle(LocalRequest request, Peer peer);

    // The fast path, for the request nearly every client makes: when the
    // request asks for a token that is there and good enough, its reply,
    // rendered (and shared with other clients until its content changes).
    // Null for every other request, or when the answer would be an error or
    // a wait: handle() gives those.
    std::shared_ptr<const RenderedReply>
    answer_now(std::string_view method, std::string_view target, const Peer& peer);

    // The reply to a request the server could not parse.
    static LocalReply error(unsigned status, std::string_view code, std::string_view message);

private:
    // The GET /v1/token replies of one profile, kept rendered.
    struct RenderedTokenReplies {
        std::shared_ptr<const Token> token;
        std::int64_t json_expires_in = -1; // the countdowns the JSON reply shows
        std::int64_t json_refresh_in = -1;
        std::shared_ptr<const RenderedReply> json;
        std::shared_ptr<const RenderedReply> header;
        std::shared_ptr<const RenderedReply> raw;
    };

    // The route, or the error reply when the request has none.
    std::variant<Route, LocalReply> route(std::string_view method, std::string_view target) const;
    // The route of a GET for a token, remembered; null for anything else.
    const Route* token_route(std::string_view method, std::string_view target);
    std::shared_ptr<const RenderedReply> rendered_token_reply(const std::string& profile,
                                                              const TokenSource& source,
                                                              std::shared_ptr<const Token> token,
                                                              std::string_view format);
    boost::asio::awaitable<LocalReply>
    token(std::string profile, Seconds min_valid, Seconds wait, std::string format, Peer peer);
    boost::asio::awaitable<LocalReply> refresh(std::string profile, Seconds wait, Peer peer);
    LocalReply health() const;
    LocalReply status() const;
    std::shared_ptr<TokenSource> find(const std::string& name) const;

    const Profiles& profiles_;
    std::map<std::string, RenderedTokenReplies, std::less<>> rendered_tokens_;
    // Token routes already parsed, by their exact target (see token_route),
    // and the default profile they were parsed with.
    std::map<std::string, Route, std::less<>> remembered_routes_;
    std::string remembered_default_;
};

} // namespace iam_tokend
