#include "routes.hpp"

#include "iam_request.hpp"
#include "local_http.hpp"
#include "metrics.hpp"

#include <boost/container/static_vector.hpp>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cmath>

namespace iam_tokend {
namespace asio = boost::asio;
namespace json = boost::json;

namespace {

// /v1/{resource}[/{profile}]: no route has more path segments.
constexpr std::size_t max_path_segments = 3;
// How many distinct token request targets are remembered parsed.
constexpr std::size_t max_parsed_token_gets = 64;

LocalReply json_reply(unsigned status, const json::value& body) {
    LocalReply reply;
    reply.status = status;
    reply.body = json::serialize(body);
    return reply;
}

// A query value in seconds: a non-negative decimal number up to `limit`.
std::optional<Seconds> parse_seconds(std::string_view text, Seconds limit) {
    double value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value) ||
        value < 0 || Seconds(value) > limit) {
        return std::nullopt;
    }
    return Seconds(value);
}

bool allowed(const AllowList& allow, const Peer& peer) {
    if (allow.uids.empty() && allow.gids.empty()) {
        return true;
    }
    // The config refuses the all-ones id, so unknown ids match no list.
    auto group_allowed = [&allow](gid_t gid) {
        return std::ranges::find(allow.gids, gid) != allow.gids.end();
    };
    return std::ranges::find(allow.uids, peer.uid) != allow.uids.end() || group_allowed(peer.gid) ||
           std::ranges::any_of(peer.groups, group_allowed);
}

LocalReply forbidden(const std::string& profile, const Peer& peer) {
    spdlog::warn("[profile {}] refused a client: uid {} gid {} pid {} is not allowed",
                 profile,
                 peer.uid,
                 peer.gid,
                 peer.pid);
    return Router::error(403, "forbidden", "this user may not use profile " + profile);
}

// 503 with the source's last error and a Retry-After covering its next attempt.
LocalReply unavailable(const TokenSource& source, std::string_view code, std::string message) {
    if (const auto& failure = source.last_error()) {
        message += ": " + failure->describe();
    }
    auto reply = Router::error(503, code, message);
    reply.headers.emplace_back("Retry-After", std::to_string(source.retry_after().count()));
    return reply;
}

LocalReply no_token(const TokenSource& source) {
    return unavailable(source,
                       "token_unavailable",
                       "no token for profile " + source.profile().name + " is available");
}

// The parts of a token's metadata that count down, in whole seconds.
struct Countdowns {
    std::int64_t expires_in = 0;
    std::int64_t refresh_in = 0;
};

Countdowns countdowns(const Token& token, const TokenSource& source) {
    auto left = std::chrono::floor<std::chrono::seconds>(token.expires_at - BootClock::now());
    return {std::max<std::int64_t>(0, left.count()), source.next_refresh_in()};
}

json::object token_metadata(const Token& token, const TokenSource& source, Countdowns left) {
    return {
        {"token_type", "Bearer"},
        {"expires_in", left.expires_in},
        {"expiration",
         std::chrono::floor<std::chrono::seconds>(token.expiration.time_since_epoch()).count()},
        {"refresh_in", left.refresh_in},
        {"profile", source.profile().name},
    };
}

// The reply to GET /v1/token with `token`, in `format`, of `kind` (the
// caller has checked that a UAA token is there when asked for); only the
// JSON reply shows the countdowns.
LocalReply token_reply(const Token& token,
                       const TokenSource& source,
                       std::string_view format,
                       std::string_view kind,
                       Countdowns left) {
    bool uaa = kind == "uaa";
    const std::string& value = uaa ? *token.uaa_token : token.access_token;

    LocalReply reply;
    reply.headers.emplace_back("Cache-Control", "no-store");
    if (format == "raw") {
        reply.content_type = "text/plain";
        reply.body = value;
    } else if (format == "header") {
        reply.content_type = "text/plain";
        reply.body = "Bearer " + value;
    } else {
        auto body = token_metadata(token, source, left);
        body["access_token"] = value;
        if (uaa) {
            body["kind"] = "uaa";
        }
        reply.body = json::serialize(body);
    }
    return reply;
}

std::shared_ptr<const RenderedReply> render_shared(LocalReply reply) {
    return std::make_shared<const RenderedReply>(render(std::move(reply)));
}

} // namespace

LocalReply Router::error(unsigned status, std::string_view code, std::string_view message) {
    return json_reply(status, {{"error", code}, {"message", message}});
}

std::shared_ptr<TokenSource> Router::find(const std::string& name) const {
    auto it = profiles_.sources.find(name);
    return it == profiles_.sources.end() ? nullptr : it->second;
}

std::variant<ParsedRequest, LocalReply> Router::parse(std::string_view method,
                                                      std::string_view target) const {
    auto parsed = boost::urls::parse_origin_form(target);
    if (!parsed) {
        return error(400, "bad_request", "the request target is not a valid path");
    }
    if (parsed->segments().size() > max_path_segments) {
        return error(404, "not_found", "no such resource: " + std::string(parsed->path()));
    }
    boost::container::static_vector<std::string, max_path_segments> path(parsed->segments().begin(),
                                                                         parsed->segments().end());

    // The resource decides which method is allowed.
    std::string_view allowed_method = "GET";
    bool is_token = !path.empty() && path[0] == "v1" && path.size() >= 2 && path.size() <= 3 &&
                    (path[1] == "token" || path[1] == "refresh");
    bool is_fixed =
        path.size() == 2 && path[0] == "v1" && (path[1] == "health" || path[1] == "status");
    bool is_metrics = metrics_ != nullptr && path.size() == 1 && path[0] == "metrics";
    if (!is_token && !is_fixed && !is_metrics) {
        return error(404, "not_found", "no such resource: " + std::string(parsed->path()));
    }
    if (is_token && path[1] == "refresh") {
        allowed_method = "POST";
    }
    if (method != allowed_method) {
        auto reply = error(405, "method_not_allowed", "use " + std::string(allowed_method));
        reply.headers.emplace_back("Allow", allowed_method);
        return reply;
    }

    ParsedRequest wanted;
    wanted.resource = is_metrics ? path[0] : path[1];
    if (is_fixed || is_metrics) {
        return wanted;
    }

    // /v1/token[/{profile}] and /v1/refresh[/{profile}] with their query.
    wanted.profile = path.size() == 3 ? path[2] : profiles_.default_name;
    for (auto param : parsed->params()) {
        if (param.key == "min_valid" || param.key == "wait") {
            auto value = parse_seconds(param.value, max_client_wait);
            if (!value) {
                return error(400,
                             "bad_request",
                             param.key + " must be a number of seconds from 0 to " +
                                 std::to_string(static_cast<int>(max_client_wait.count())));
            }
            (param.key == "wait" ? wanted.wait : wanted.min_valid) = *value;
        } else if (param.key == "format") {
            if (param.value != "json" && param.value != "header" && param.value != "raw") {
                return error(400, "bad_request", "format must be json, header or raw");
            }
            wanted.format = param.value;
        } else if (param.key == "kind") {
            if (param.value != "iam" && param.value != "uaa") {
                return error(400, "bad_request", "kind must be iam or uaa");
            }
            wanted.kind = param.value;
        } else {
            return error(400, "bad_request", "unknown query parameter: " + param.key);
        }
    }

    return wanted;
}

asio::awaitable<LocalReply> Router::handle(LocalRequest request, Peer peer) {
    auto parsed = parse(request.method, request.target);
    if (auto* refusal = std::get_if<LocalReply>(&parsed)) {
        co_return std::move(*refusal);
    }
    auto& wanted = std::get<ParsedRequest>(parsed);
    if (wanted.resource == "health") {
        co_return health();
    }
    if (wanted.resource == "status") {
        co_return status();
    }
    if (wanted.resource == "metrics") {
        co_return metrics();
    }
    if (wanted.resource == "refresh") {
        co_return co_await refresh(std::move(wanted.profile), wanted.wait, std::move(peer));
    }
    co_return co_await token(std::move(wanted.profile),
                             wanted.min_valid,
                             wanted.wait,
                             std::move(wanted.format),
                             std::move(wanted.kind),
                             std::move(peer));
}

// Parsing a target costs more than all the rest of answering it, and
// clients ask for the same few targets again and again: what they ask for
// is remembered by the exact target. The memory is emptied when it is full
// (a client cycling through made-up targets only costs the parsing), and
// when a reload changes the default profile, which a target without a
// profile name resolves to.
const ParsedRequest* Router::parse_token_get(std::string_view method, std::string_view target) {
    if (method != "GET") {
        return nullptr;
    }
    if (parsed_with_default_ != profiles_.default_name) {
        parsed_token_gets_.clear();
        parsed_with_default_ = profiles_.default_name;
    }
    if (auto known = parsed_token_gets_.find(target); known != parsed_token_gets_.end()) {
        return &known->second;
    }

    auto parsed = parse(method, target);
    auto* wanted = std::get_if<ParsedRequest>(&parsed);
    if (wanted == nullptr || wanted->resource != "token") {
        return nullptr;
    }
    if (parsed_token_gets_.size() >= max_parsed_token_gets) {
        parsed_token_gets_.clear();
    }
    return &parsed_token_gets_.emplace(target, std::move(*wanted)).first->second;
}

std::shared_ptr<const RenderedReply>
Router::answer_now(std::string_view method, std::string_view target, const Peer& peer) {
    const ParsedRequest* wanted = parse_token_get(method, target);
    if (wanted == nullptr) {
        return nullptr;
    }
    auto source = find(wanted->profile);
    if (!source || !allowed(source->profile().allow, peer)) {
        return nullptr;
    }
    bool uaa = wanted->kind == "uaa";
    if (uaa && !wants_uaa(source->profile())) {
        return nullptr;
    }
    auto token = source->current(wanted->min_valid);
    if (!token || (uaa && !token->uaa_token)) {
        return nullptr;
    }
    return rendered_token_reply(*wanted, *source, std::move(token));
}

// Replies are rendered when first asked for and then shared, until the
// token changes, or, for the JSON reply, until one of its countdowns
// (expires_in, refresh_in) moves on, which under load is once a second. A
// reply being written keeps its bytes alive, so replacing it here never
// pulls them from under a write.
std::shared_ptr<const RenderedReply>
Router::rendered_token_reply(const ParsedRequest& wanted,
                             const TokenSource& source,
                             std::shared_ptr<const Token> token) {
    auto it = rendered_tokens_.find(wanted.profile);
    if (it == rendered_tokens_.end()) {
        // A profile not seen before, maybe after a reload: forget those gone.
        std::erase_if(rendered_tokens_, [this](const auto& entry) {
            return !profiles_.sources.contains(entry.first);
        });
        it = rendered_tokens_.emplace(wanted.profile, RenderedTokenReplies{}).first;
    }
    auto& replies = it->second;
    if (replies.token != token) {
        replies = RenderedTokenReplies{};
        replies.token = std::move(token);
    }

    auto& kind = wanted.kind == "uaa" ? replies.uaa : replies.iam;
    Countdowns left = countdowns(*replies.token, source);
    auto render_now = [&] {
        return render_shared(token_reply(*replies.token, source, wanted.format, wanted.kind, left));
    };
    if (wanted.format == "json") {
        if (!kind.json || left.expires_in != kind.json_expires_in ||
            left.refresh_in != kind.json_refresh_in) {
            kind.json = render_now();
            kind.json_expires_in = left.expires_in;
            kind.json_refresh_in = left.refresh_in;
        }
        return kind.json;
    }
    auto& kept = wanted.format == "header" ? kind.header : kind.raw;
    if (!kept) {
        kept = render_now();
    }
    return kept;
}

asio::awaitable<LocalReply> Router::token(std::string profile,
                                          Seconds min_valid,
                                          Seconds wait,
                                          std::string format,
                                          std::string kind,
                                          Peer peer) {
    auto source = find(profile);
    if (!source) {
        co_return error(404, "unknown_profile", "no profile named " + profile);
    }
    if (!allowed(source->profile().allow, peer)) {
        co_return forbidden(profile, peer);
    }
    bool uaa = kind == "uaa";
    if (uaa && !wants_uaa(source->profile())) {
        co_return error(400,
                        "uaa_not_configured",
                        "profile " + profile +
                            R"( does not ask IAM for a UAA token (response_type "cloud_iam,uaa"))");
    }

    auto token = co_await source->get(min_valid, wait);
    if (!token || (uaa && !token->uaa_token)) {
        co_return no_token(*source);
    }
    co_return token_reply(*token, *source, format, kind, countdowns(*token, *source));
}

asio::awaitable<LocalReply> Router::refresh(std::string profile, Seconds wait, Peer peer) {
    auto source = find(profile);
    if (!source) {
        co_return error(404, "unknown_profile", "no profile named " + profile);
    }
    if (!allowed(source->profile().allow, peer)) {
        co_return forbidden(profile, peer);
    }

    auto before = source->current();
    auto token = co_await source->refresh(wait);
    if (!token && !before) {
        co_return no_token(*source);
    }
    if (!token || token == before) {
        // The current token, if still valid, goes on being served.
        co_return unavailable(*source,
                              "refresh_failed",
                              "the refresh of profile " + source->profile().name + " failed");
    }
    auto reply = json_reply(200, token_metadata(*token, *source, countdowns(*token, *source)));
    reply.headers.emplace_back("Cache-Control", "no-store");
    co_return reply;
}

LocalReply Router::health() const {
    json::array failing;
    for (const auto& [name, source] : profiles_.sources) {
        if (!source->current()) {
            failing.emplace_back(name);
        }
    }
    if (failing.empty()) {
        return json_reply(200, {{"status", "ok"}});
    }
    return json_reply(503, {{"status", "unavailable"}, {"profiles", std::move(failing)}});
}

LocalReply Router::metrics() const {
    LocalReply reply;
    reply.content_type = metrics_content_type;
    reply.body = metrics_->render(profiles_);
    return reply;
}

LocalReply Router::status() const {
    json::object profiles;
    for (const auto& [name, source] : profiles_.sources) {
        profiles[name] = source->status();
    }
    return json_reply(200,
                      {{"version", IAM_TOKEND_VERSION},
                       {"default_profile", profiles_.default_name},
                       {"profiles", std::move(profiles)}});
}

} // namespace iam_tokend
