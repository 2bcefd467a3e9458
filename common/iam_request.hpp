// Building requests to IAM's token endpoint (DESIGN §1.2): the form bodies
// of each grant and the client's Basic authorization. The bodies hold
// secrets; callers hand them straight to the HTTPS client and never log them.
#pragma once

#include "config.hpp"
#include "https_client.hpp"

#include <string>
#include <string_view>

namespace iam_tokend {

inline constexpr std::string_view apikey_grant_type = "urn:ibm:params:oauth:grant-type:apikey";
// The client IAM hands UAA tokens to (`response_type` "cloud_iam,uaa").
inline constexpr std::string_view uaa_client_id = "cf";

// Whether the profile asks IAM for a UAA token besides the IAM token.
bool wants_uaa(const Profile& profile);

// `application/x-www-form-urlencoded` escaping of one value.
std::string form_escape(std::string_view value);

// "Basic " + base64(client_id ":" client_secret).
std::string basic_authorization(std::string_view client_id, std::string_view client_secret);

// A login with the profile's secret: the API-key grant, or the password
// grant when the profile says so. The request goes through the profile's
// proxy, or the environment's (see proxy.hpp).
HttpsRequest login_request(const Profile& profile, std::string_view secret);

// A refresh with the refresh token from the last reply. With a UAA token
// asked for, the refresh asks for it again.
HttpsRequest refresh_request(const Profile& profile, std::string_view refresh_token);

} // namespace iam_tokend
