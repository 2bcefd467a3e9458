#include "jwt.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <openssl/evp.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace iam_tokend {
namespace json = boost::json;

namespace {

// Base64url without padding (RFC 7515) to bytes; nothing when malformed.
std::optional<std::string> base64url_decode(std::string_view text) {
    if (text.size() % 4 == 1) {
        return std::nullopt;
    }
    std::string standard(text);
    for (char& c : standard) {
        if (c == '-') {
            c = '+';
        } else if (c == '_') {
            c = '/';
        } else if (c == '+' || c == '/' || c == '=') {
            return std::nullopt; // not the URL-safe alphabet
        }
    }
    std::size_t padding = (4 - standard.size() % 4) % 4;
    standard.append(padding, '=');

    std::vector<unsigned char> out(standard.size() / 4 * 3 + 1);
    int length = EVP_DecodeBlock(out.data(),
                                 reinterpret_cast<const unsigned char*>(standard.data()),
                                 static_cast<int>(standard.size()));
    if (length < 0) {
        return std::nullopt;
    }
    // EVP_DecodeBlock counts the padding as zero bytes.
    return std::string(out.begin(), out.begin() + length - static_cast<int>(padding));
}

std::optional<std::int64_t> whole_seconds(const json::value& value) {
    if (value.is_int64()) {
        return value.get_int64();
    }
    if (value.is_uint64() && value.get_uint64() <= std::numeric_limits<std::int64_t>::max()) {
        return static_cast<std::int64_t>(value.get_uint64());
    }
    constexpr double limit = 1e15; // far beyond any date a token could carry
    if (value.is_double() && std::isfinite(value.get_double()) &&
        std::abs(value.get_double()) < limit) {
        return static_cast<std::int64_t>(std::floor(value.get_double()));
    }
    return std::nullopt;
}

} // namespace

std::optional<std::int64_t> jwt_expiry(std::string_view token) {
    if (token.size() > max_jwt_length) {
        return std::nullopt;
    }
    auto first_dot = token.find('.');
    auto second_dot = token.find('.', first_dot == std::string_view::npos ? 0 : first_dot + 1);
    if (first_dot == std::string_view::npos || second_dot == std::string_view::npos) {
        return std::nullopt;
    }

    auto payload = base64url_decode(token.substr(first_dot + 1, second_dot - first_dot - 1));
    if (!payload) {
        return std::nullopt;
    }
    boost::system::error_code ec;
    json::value claims = json::parse(*payload, ec);
    if (ec || !claims.is_object()) {
        return std::nullopt;
    }
    const json::value* exp = claims.get_object().if_contains("exp");
    if (exp == nullptr) {
        return std::nullopt;
    }
    return whole_seconds(*exp);
}

} // namespace iam_tokend
