// The local API (DESIGN §3): from a request line to a reply, with no
// knowledge of sockets, which stay in local_server. The replies to token
// requests are kept rendered (local_http.hpp) and shared between clients:
// see Router::answer_now.
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

struct RenderedReply; // local_http.hpp

// What a request asks for, once its method, path and query are checked.
struct ParsedRequest {
    std::string resource; // "token", "refresh", "health", "status" or "metrics"
    std::string profile;
    Seconds min_valid{0};
    Seconds wait = default_client_wait;
    std::string format = "json"; // "json", "header" or "raw"
    std::string kind = "iam";    // "iam" or "uaa"
};

class Router {
public:
    // `metrics`, when given, is served at GET /metrics and must outlive the
    // router.
    explicit Router(const Profiles& profiles, const Metrics* metrics = nullptr)
        : profiles_(profiles),
          metrics_(metrics) {}

    boost::asio::awaitable<LocalReply> handle(LocalRequest request, Peer peer);

    // The fast path, for the request nearly every client makes: when it is a
    // GET for a token that is there and good enough, its reply, rendered
    // (and shared with other clients until its content changes). Null for
    // every other request, and whenever the answer would be an error or a
    // wait: handle() gives those.
    std::shared_ptr<const RenderedReply>
    answer_now(std::string_view method, std::string_view target, const Peer& peer);

    // The reply to a request the server could not parse.
    static LocalReply error(unsigned status, std::string_view code, std::string_view message);

private:
    // The rendered GET /v1/token replies for one kind of token (iam, uaa).
    struct RenderedKind {
        std::int64_t json_expires_in = -1; // the countdowns the JSON reply shows
        std::int64_t json_refresh_in = -1;
        std::shared_ptr<const RenderedReply> json;
        std::shared_ptr<const RenderedReply> header;
        std::shared_ptr<const RenderedReply> raw;
    };
    // ... and for one profile, as long as its token stays the same.
    struct RenderedTokenReplies {
        std::shared_ptr<const Token> token;
        RenderedKind iam;
        RenderedKind uaa;
    };

    // What the request asks for, or the error reply when it is refused.
    std::variant<ParsedRequest, LocalReply> parse(std::string_view method,
                                                  std::string_view target) const;
    // parse() for a GET of a token, remembered; null for anything else.
    const ParsedRequest* parse_token_get(std::string_view method, std::string_view target);
    std::shared_ptr<const RenderedReply> rendered_token_reply(const ParsedRequest& wanted,
                                                              const TokenSource& source,
                                                              std::shared_ptr<const Token> token);
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
    std::map<std::string, RenderedTokenReplies, std::less<>> rendered_tokens_;
    // GETs of a token already parsed, by their exact target, and the
    // default profile they were parsed with (see parse_token_get).
    std::map<std::string, ParsedRequest, std::less<>> parsed_token_gets_;
    std::string parsed_with_default_;
};

} // namespace iam_tokend
