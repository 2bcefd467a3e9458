#include "iam_response.hpp"

#include <boost/json.hpp>

#include <cctype>
#include <charconv>
#include <cmath>
#include <ctime>

namespace iam_tokend {
namespace json = boost::json;

namespace {

// Runs of this many token-like characters are masked in excerpts, so a
// reply cut inside a token cannot leak the part that arrived.
constexpr std::size_t opaque_run_length = 16;

std::string_view json_type_name(const json::value& value) {
    switch (value.kind()) {
    case json::kind::null:
        return "null";
    case json::kind::bool_:
        return "bool";
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
        return "number";
    case json::kind::string:
        return "string";
    case json::kind::array:
        return "array";
    case json::kind::object:
        return "object";
    }
    return "unknown";
}

Failure bad_reply(const HttpReply& reply, std::string message) {
    Failure failure;
    failure.kind = FailureKind::bad_response;
    failure.message = std::move(message);
    failure.http_status = reply.status;
    return failure;
}

// A string member, or nullopt when absent, null, empty or not a string.
std::optional<std::string> optional_string(const json::object& object, std::string_view key) {
    const auto* value = object.if_contains(key);
    if (value == nullptr || !value->is_string() || value->get_string().empty()) {
        return std::nullopt;
    }
    return std::string(value->get_string());
}

// Accepted forms of `expires_in`: a JSON integer, a JSON number with a
// fraction (rounded down), or a string of decimal digits. Anything else,
// and any value outside [min_expires_in, max_expires_in], is refused.
boost::system::result<std::chrono::seconds, std::string> read_expires_in(const json::value* value) {
    if (value == nullptr) {
        return std::string("expires_in is missing");
    }

    double seconds = 0;
    if (value->is_int64()) {
        seconds = static_cast<double>(value->get_int64());
    } else if (value->is_uint64()) {
        seconds = static_cast<double>(value->get_uint64());
    } else if (value->is_double()) {
        seconds = std::floor(value->get_double());
    } else if (value->is_string()) {
        std::string_view text = value->get_string();
        std::int64_t parsed = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), parsed);
        if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
            return std::string("expires_in has JSON type string but is not a whole number");
        }
        seconds = static_cast<double>(parsed);
    } else {
        return "expires_in has JSON type " + std::string(json_type_name(*value)) +
               ", expected a number";
    }

    if (!std::isfinite(seconds) || seconds < static_cast<double>(min_expires_in.count()) ||
        seconds > static_cast<double>(max_expires_in.count())) {
        return "expires_in " + json::serialize(*value) + " (JSON type " +
               std::string(json_type_name(*value)) + ") is outside 1 s .. 7 days";
    }
    return std::chrono::seconds(static_cast<std::int64_t>(seconds));
}

// Why the grant holds a token too long to keep, or nullopt. Tokens are
// never cut short: a cut token would only be refused by the API it is for.
std::optional<std::string> oversized_token(const TokenGrant& grant) {
    auto size_of = [](const std::optional<std::string>& token) {
        return token ? token->size() : std::size_t{0};
    };
    const std::pair<std::string_view, std::size_t> sizes[] = {
        {"access_token", grant.access_token.size()},
        {"refresh_token", size_of(grant.refresh_token)},
        {"uaa_token", size_of(grant.uaa_token)},
        {"uaa_refresh_token", size_of(grant.uaa_refresh_token)},
    };
    for (auto [field, size] : sizes) {
        if (size > max_token_size) {
            return std::string(field) + " is " + std::to_string(size) +
                   " bytes, over the limit of " + std::to_string(max_token_size) + " bytes";
        }
    }
    return std::nullopt;
}

std::string describe_unexpected(const HttpReply& reply) {
    return "content type '" + printable(reply.content_type, error_field_length) + "', " +
           std::to_string(reply.body.size()) + " bytes, starting '" + body_excerpt(reply.body) +
           "'";
}

} // namespace

boost::system::result<TokenGrant, Failure> parse_token_reply(const HttpReply& reply) {
    if (reply.status < 200 || reply.status > 299) {
        return parse_error_reply(reply);
    }

    boost::system::error_code ec;
    json::value document = json::parse(reply.body, ec);
    if (ec || !document.is_object()) {
        return bad_reply(reply, "token reply is not a JSON object: " + describe_unexpected(reply));
    }
    const auto& object = document.get_object();

    TokenGrant grant;
    auto access_token = optional_string(object, "access_token");
    if (!access_token) {
        const auto* value = object.if_contains("access_token");
        return bad_reply(reply,
                         value == nullptr
                             ? "access_token is missing"
                             : "access_token has JSON type " + std::string(json_type_name(*value)) +
                                   " or is empty");
    }
    grant.access_token = std::move(*access_token);

    auto expires_in = read_expires_in(object.if_contains("expires_in"));
    if (!expires_in) {
        return bad_reply(reply, expires_in.error());
    }
    grant.expires_in = *expires_in;

    grant.token_type = optional_string(object, "token_type").value_or("Bearer");
    grant.refresh_token = optional_string(object, "refresh_token");
    if (grant.refresh_token == "not_supported") {
        grant.refresh_token.reset();
    }
    if (const auto* expiration = object.if_contains("expiration"); expiration != nullptr) {
        if (auto seconds = expiration->to_number<std::int64_t>(ec); !ec) {
            grant.expiration = seconds;
        }
    }
    grant.uaa_token = optional_string(object, "uaa_token");
    grant.uaa_refresh_token = optional_string(object, "uaa_refresh_token");
    if (auto problem = oversized_token(grant)) {
        return bad_reply(reply, std::move(*problem));
    }
    return grant;
}

Failure parse_error_reply(const HttpReply& reply) {
    Failure failure;
    failure.kind = FailureKind::http;
    failure.http_status = reply.status;

    boost::system::error_code ec;
    json::value document = json::parse(reply.body, ec);
    const json::object* object = (!ec && document.is_object()) ? &document.get_object() : nullptr;
    auto error_code = object != nullptr ? optional_string(*object, "errorCode") : std::nullopt;
    if (!error_code) {
        failure.message = "IAM answered HTTP " + std::to_string(reply.status) + " with " +
                          describe_unexpected(reply);
        return failure;
    }

    failure.kind = FailureKind::iam;
    failure.error_code = printable(*error_code, error_field_length);
    failure.message = printable(optional_string(*object, "errorMessage").value_or("no message"),
                                error_message_length);
    if (const auto* context = object->if_contains("context"); context && context->is_object()) {
        if (auto id = optional_string(context->get_object(), "requestId")) {
            failure.request_id = printable(*id, error_field_length);
        }
    }
    return failure;
}

std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now) {
    while (!value.empty() && value.front() == ' ') {
        value.remove_prefix(1);
    }
    while (!value.empty() && value.back() == ' ') {
        value.remove_suffix(1);
    }
    if (value.empty()) {
        return std::nullopt;
    }

    std::int64_t seconds = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (ec == std::errc() && end == value.data() + value.size()) {
        return seconds < 0 ? std::nullopt : std::optional(std::chrono::seconds(seconds));
    }

    // An HTTP date (IMF-fixdate), e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
    std::tm parts{};
    std::string text(value);
    const char* parsed = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &parts);
    if (parsed == nullptr || *parsed != '\0') {
        return std::nullopt;
    }
    // In whole seconds: a date centuries away does not fit the clock's
    // nanoseconds.
    std::int64_t at = timegm(&parts);
    std::int64_t from = std::chrono::floor<std::chrono::seconds>(now.time_since_epoch()).count();
    return std::chrono::seconds(std::max<std::int64_t>(at - from, 0));
}

std::string printable(std::string_view text, std::size_t limit) {
    std::string out(text.substr(0, limit));
    for (auto& c : out) {
        auto uc = static_cast<unsigned char>(c);
        if (std::isprint(uc) == 0 || c == '"' || c == '\\') {
            c = ' ';
        }
    }
    return out;
}

std::string body_excerpt(std::string_view body) {
    std::string out;
    std::size_t run = 0;
    for (char c : body.substr(0, body_excerpt_length)) {
        auto uc = static_cast<unsigned char>(c);
        bool opaque = std::isalnum(uc) != 0 || c == '-' || c == '_' || c == '.';
        run = opaque ? run + 1 : 0;
        if (run == opaque_run_length) {
            // Replace the run so far with a mark; the rest of it is dropped.
            out.resize(out.size() - (opaque_run_length - 1));
            out += "[...]";
            continue;
        }
        if (run > opaque_run_length) {
            continue;
        }
        out += (std::isprint(uc) != 0 && c != '"' && c != '\\') ? c : ' ';
    }
    return out;
}

} // namespace iam_tokend
