// Choosing and reading the HTTP proxy that tunnels a profile's requests to
// IAM (HTTP CONNECT).
//
// The profile's `proxy` wins. Without one, the environment is asked the way
// curl asks it: `https_proxy`, then `HTTPS_PROXY`, for the proxy; `no_proxy`,
// then `NO_PROXY`, for the hosts reached directly. A proxy URL may carry
// credentials (`http://user:password@host:port`): they become a
// `Proxy-Authorization: Basic` header and are never shown; messages name a
// proxy by its host and port only.
#pragma once

#include <boost/system/result.hpp>

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace iam_tokend {

// Where a proxy URL came from, for messages: "proxy" (the profile's key),
// "https_proxy" or "HTTPS_PROXY".
struct ProxySetting {
    std::string url; // may hold credentials: never log it
    std::string source;

    bool operator==(const ProxySetting&) const = default;
};

// A proxy URL taken apart, ready to connect to.
struct ProxyEndpoint {
    std::string host; // a name, or an address without brackets
    std::string port;
    std::optional<std::string> authorization; // "Basic ...", from the user info

    // "host:port", safe to log.
    std::string name() const;
};

// Reads an environment variable; null when it is not set.
using EnvironmentLookup = std::function<const char*(const char*)>;

// The process's own environment (std::getenv).
EnvironmentLookup process_environment();

// The proxy for requests to `target_url`: the profile's `configured` one,
// else the environment's unless `no_proxy` exempts the target's host;
// nothing for a direct connection.
std::optional<ProxySetting> choose_proxy(const std::string& target_url,
                                         const std::optional<std::string>& configured,
                                         const EnvironmentLookup& environment);

// Whether a `no_proxy` list (comma-separated: `*`, host names that also
// cover their subdomains, with or without a leading dot, IP addresses,
// CIDR blocks, each optionally with `:port`) exempts `host` on `port`.
bool no_proxy_matches(std::string_view no_proxy, std::string_view host, std::string_view port);

// The proxy's host, port (default 80) and credentials. The environment may
// leave out the scheme (`proxy:3128`); only `http://` proxies are supported.
// The error says what is wrong without quoting the URL.
boost::system::result<ProxyEndpoint, std::string> parse_proxy(const ProxySetting& setting);

// "proxy host:port (from SOURCE)", or what is wrong with it: for logs.
std::string describe(const ProxySetting& setting);

} // namespace iam_tokend
