#include "routes.hpp"

#include "iam_request.hpp"
#include "metrics.hpp"

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

json::object token_metadata(const Token& token, const TokenSource& source) {
    auto now = BootClock::now();
    auto seconds = [](auto duration) {
        return std::max<std::int64_t>(0,
                                      std::chrono::floor<std::chrono::seconds>(duration).count());
    };
    auto status = source.status();
    return {
        {"token_type", "Bearer"},
        {"expires_in", seconds(token.expires_at - now)},
        {"expiration",
         std::chrono::floor<std::chrono::seconds>(token.expiration.time_since_epoch()).count()},
        {"refresh_in", status["next_refresh_in"]},
        {"profile", source.profile().name},
    };
}

} // namespace

LocalReply Router::error(unsigned status, std::string_view code, std::string_view message) {
    return json_reply(status, {{"error", code}, {"message", message}});
}

std::shared_ptr<TokenSource> Router::find(const std::string& name) const {
    auto it = profiles_.sources.find(name);
    return it == profiles_.sources.end() ? nullptr : it->second;
}

asio::awaitable<LocalReply> Router::handle(LocalRequest request, Peer peer) {
    auto parsed = boost::urls::parse_origin_form(request.target);
    if (!parsed) {
        co_return error(400, "bad_request", "the request target is not a valid path");
    }
    std::vector<std::string> path(parsed->segments().begin(), parsed->segments().end());

    // The resource decides which method is allowed.
    std::string_view allowed_method = "GET";
    bool is_token = !path.empty() && path[0] == "v1" && path.size() >= 2 && path.size() <= 3 &&
                    (path[1] == "token" || path[1] == "refresh");
    bool is_fixed =
        path.size() == 2 && path[0] == "v1" && (path[1] == "health" || path[1] == "status");
    bool is_metrics = metrics_ != nullptr && path.size() == 1 && path[0] == "metrics";
    if (!is_token && !is_fixed && !is_metrics) {
        co_return error(404, "not_found", "no such resource: " + std::string(parsed->path()));
    }
    if (is_token && path[1] == "refresh") {
        allowed_method = "POST";
    }
    if (request.method != allowed_method) {
        auto reply = error(405, "method_not_allowed", "use " + std::string(allowed_method));
        reply.headers.emplace_back("Allow", allowed_method);
        co_return reply;
    }

    if (is_fixed) {
        co_return path[1] == "health" ? health() : status();
    }
    if (is_metrics) {
        co_return metrics();
    }

    // /v1/token[/{profile}] and /v1/refresh[/{profile}] with their query.
    std::string profile = path.size() == 3 ? path[2] : profiles_.default_name;
    Seconds min_valid{0};
    Seconds wait = default_client_wait;
    std::string format = "json";
    std::string kind = "iam";
    for (auto param : parsed->params()) {
        if (param.key == "min_valid" || param.key == "wait") {
            auto value = parse_seconds(param.value, max_client_wait);
            if (!value) {
                co_return error(400,
                                "bad_request",
                                param.key + " must be a number of seconds from 0 to " +
                                    std::to_string(static_cast<int>(max_client_wait.count())));
            }
            (param.key == "wait" ? wait : min_valid) = *value;
        } else if (param.key == "format") {
            if (param.value != "json" && param.value != "header" && param.value != "raw") {
                co_return error(400, "bad_request", "format must be json, header or raw");
            }
            format = param.value;
        } else if (param.key == "kind") {
            if (param.value != "iam" && param.value != "uaa") {
                co_return error(400, "bad_request", "kind must be iam or uaa");
            }
            kind = param.value;
        } else {
            co_return error(400, "bad_request", "unknown query parameter: " + param.key);
        }
    }

    if (path[1] == "refresh") {
        co_return co_await refresh(std::move(profile), wait, peer);
    }
    co_return co_await token(std::move(profile),
                             min_valid,
                             wait,
                             std::move(format),
                             std::move(kind),
                             peer);
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
    const std::string& value = uaa ? *token->uaa_token : token->access_token;

    LocalReply reply;
    reply.headers.emplace_back("Cache-Control", "no-store");
    if (format == "raw") {
        reply.content_type = "text/plain";
        reply.body = value;
    } else if (format == "header") {
        reply.content_type = "text/plain";
        reply.body = "Bearer " + value;
    } else {
        auto body = token_metadata(*token, *source);
        body["access_token"] = value;
        if (uaa) {
            body["kind"] = "uaa";
        }
        reply.body = json::serialize(body);
    }
    co_return reply;
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
    auto reply = json_reply(200, token_metadata(*token, *source));
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
