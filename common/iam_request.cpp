#include "iam_request.hpp"

#include <openssl/evp.h>

#include <array>
#include <vector>

namespace iam_tokend {

namespace {

std::string base64(std::string_view data) {
    std::vector<unsigned char> out(4 * ((data.size() + 2) / 3) + 1);
    int length = EVP_EncodeBlock(out.data(),
                                 reinterpret_cast<const unsigned char*>(data.data()),
                                 static_cast<int>(data.size()));
    return {out.begin(), out.begin() + length};
}

HttpsRequest base_request(const Profile& profile, std::string body) {
    HttpsRequest request;
    request.url = profile.iam_url;
    request.ca_file = profile.ca_file;
    request.timeouts = profile.timeouts;
    request.proxy = choose_proxy(profile.iam_url, profile.proxy, process_environment());
    request.headers = {
        {"Content-Type", "application/x-www-form-urlencoded"},
        {"Accept", "application/json"},
        {"Authorization", basic_authorization(profile.client_id, profile.client_secret)},
    };
    request.body = std::move(body);
    return request;
}

// `response_type`, and with a UAA token asked for, the UAA client: IAM's
// "cf" client with an empty secret.
std::string response_type_fields(const Profile& profile) {
    std::string fields = "&response_type=" + form_escape(profile.response_type);
    if (wants_uaa(profile)) {
        fields += "&uaa_client_id=" + form_escape(uaa_client_id) + "&uaa_client_secret=";
    }
    return fields;
}

} // namespace

bool wants_uaa(const Profile& profile) {
    return profile.response_type.find("uaa") != std::string::npos;
}

std::string form_escape(std::string_view value) {
    constexpr std::string_view hex = "0123456789ABCDEF";
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        auto byte = static_cast<unsigned char>(c);
        bool plain = std::isalnum(byte) != 0 || c == '-' || c == '_' || c == '.' || c == '*';
        if (plain) {
            out += c;
        } else if (c == ' ') {
            out += '+';
        } else {
            out += '%';
            out += hex[byte >> 4U];
            out += hex[byte & 0xfU];
        }
    }
    return out;
}

std::string basic_authorization(std::string_view client_id, std::string_view client_secret) {
    std::string pair;
    pair.append(client_id).append(":").append(client_secret);
    return "Basic " + base64(pair);
}

HttpsRequest login_request(const Profile& profile, std::string_view secret) {
    std::string body;
    if (profile.grant == Grant::password) {
        body = "grant_type=password&username=" + form_escape(profile.username.value_or("")) +
               "&password=" + form_escape(secret);
    } else {
        body = "grant_type=" + form_escape(apikey_grant_type) + "&apikey=" + form_escape(secret);
    }
    body += response_type_fields(profile);
    return base_request(profile, std::move(body));
}

HttpsRequest refresh_request(const Profile& profile, std::string_view refresh_token) {
    std::string body = "grant_type=refresh_token&refresh_token=" + form_escape(refresh_token);
    if (wants_uaa(profile)) {
        body += response_type_fields(profile); // so the UAA token is renewed too
    }
    return base_request(profile, std::move(body));
}

} // namespace iam_tokend
