#include "proxy.hpp"

#include "iam_request.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>
#include <boost/url/parse.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <span>

namespace iam_tokend {
namespace ip = boost::asio::ip;
namespace urls = boost::urls;

namespace {

constexpr std::string_view default_proxy_port = "80";
constexpr std::string_view default_https_port = "443";
constexpr int max_port = 65535;

// Environment variables in the order they are asked.
constexpr std::array<std::string_view, 2> proxy_variables = {"https_proxy", "HTTPS_PROXY"};
constexpr std::array<std::string_view, 2> no_proxy_variables = {"no_proxy", "NO_PROXY"};

std::string lower(std::string_view text) {
    std::string out(text);
    std::ranges::transform(out, out.begin(), [](unsigned char c) { return std::tolower(c); });
    return out;
}

std::string_view trim(std::string_view text) {
    auto space = [](char c) {
        return c == ' ' || c == '\t';
    };
    while (!text.empty() && space(text.front())) {
        text.remove_prefix(1);
    }
    while (!text.empty() && space(text.back())) {
        text.remove_suffix(1);
    }
    return text;
}

// The first of `names` that is set to something non-empty.
std::optional<std::pair<std::string, std::string>>
first_set(const EnvironmentLookup& environment, std::span<const std::string_view> names) {
    for (auto name : names) {
        std::string key(name);
        const char* value = environment(key.c_str());
        if (value != nullptr && *value != '\0') {
            return std::pair{key, std::string(value)};
        }
    }
    return std::nullopt;
}

std::optional<ip::address> as_address(std::string_view text) {
    boost::system::error_code ec;
    auto address = ip::make_address(std::string(text), ec);
    if (ec) {
        return std::nullopt;
    }
    return address;
}

// `host` inside the CIDR block `block` (e.g. 10.0.0.0/8, fd00::/8).
bool in_block(std::string_view block, std::string_view host) {
    auto address = as_address(host);
    if (!address) {
        return false;
    }
    boost::system::error_code ec;
    if (address->is_v4()) {
        auto network = ip::make_network_v4(std::string(block), ec);
        if (ec) {
            return false;
        }
        auto own = ip::network_v4(address->to_v4(), network.prefix_length());
        return own.canonical() == network.canonical();
    }
    auto network = ip::make_network_v6(std::string(block), ec);
    if (ec) {
        return false;
    }
    auto own = ip::network_v6(address->to_v6(), network.prefix_length());
    return own.canonical() == network.canonical();
}

// Splits "name:port", "[v6]:port", "[v6]" or a bare name or address.
std::pair<std::string_view, std::string_view> split_port(std::string_view entry) {
    if (entry.starts_with('[')) {
        auto close = entry.find(']');
        if (close == std::string_view::npos) {
            return {entry, {}};
        }
        std::string_view rest = entry.substr(close + 1);
        return {entry.substr(1, close - 1), rest.starts_with(':') ? rest.substr(1) : rest};
    }
    if (std::ranges::count(entry, ':') != 1) {
        return {entry, {}}; // a name, an IPv4 address, or a bare IPv6 address
    }
    auto colon = entry.find(':');
    return {entry.substr(0, colon), entry.substr(colon + 1)};
}

bool entry_matches(std::string_view entry, std::string_view host, std::string_view port) {
    if (entry == "*") {
        return true;
    }
    if (entry.find('/') != std::string_view::npos) {
        return in_block(entry, host);
    }

    auto [name, entry_port] = split_port(entry);
    if (!entry_port.empty() && entry_port != port) {
        return false;
    }

    auto name_address = as_address(name);
    auto host_address = as_address(host);
    if (name_address || host_address) {
        return name_address && host_address && *name_address == *host_address;
    }

    // A name covers itself and its subdomains; "*.x" and ".x" mean the same.
    if (name.starts_with("*.")) {
        name.remove_prefix(1);
    }
    if (name.starts_with('.')) {
        name.remove_prefix(1);
    }
    if (name.empty()) {
        return false;
    }
    std::string wanted = lower(name);
    std::string have = lower(host);
    return have == wanted || have.ends_with("." + wanted);
}

bool valid_port(std::string_view text) {
    int port = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
    return ec == std::errc() && end == text.data() + text.size() && port > 0 && port <= max_port;
}

using ProxyResult = boost::system::result<ProxyEndpoint, std::string>;

ProxyResult proxy_error(const ProxySetting& setting, std::string_view what) {
    return {boost::system::in_place_error, setting.source + " " + std::string(what)};
}

} // namespace

EnvironmentLookup process_environment() {
    return [](const char* name) {
        return std::getenv(name);
    };
}

std::string ProxyEndpoint::name() const {
    bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + port;
}

bool no_proxy_matches(std::string_view no_proxy, std::string_view host, std::string_view port) {
    while (!no_proxy.empty()) {
        auto comma = no_proxy.find(',');
        std::string_view entry = trim(no_proxy.substr(0, comma));
        no_proxy =
            comma == std::string_view::npos ? std::string_view{} : no_proxy.substr(comma + 1);
        if (!entry.empty() && entry_matches(entry, host, port)) {
            return true;
        }
    }
    return false;
}

std::optional<ProxySetting> choose_proxy(const std::string& target_url,
                                         const std::optional<std::string>& configured,
                                         const EnvironmentLookup& environment) {
    if (configured) {
        return ProxySetting{*configured, "proxy"};
    }
    auto from_environment = first_set(environment, proxy_variables);
    if (!from_environment) {
        return std::nullopt;
    }

    if (auto exempt = first_set(environment, no_proxy_variables)) {
        auto target = urls::parse_uri(target_url);
        if (target) {
            std::string port =
                target->has_port() ? std::string(target->port()) : std::string(default_https_port);
            if (no_proxy_matches(exempt->second, target->host_address(), port)) {
                return std::nullopt;
            }
        }
    }
    return ProxySetting{std::move(from_environment->second), std::move(from_environment->first)};
}

ProxyResult parse_proxy(const ProxySetting& setting) {
    std::string text = setting.url;
    if (text.find("://") == std::string::npos) {
        text = "http://" + text;
    }
    auto parsed = urls::parse_uri(text);
    if (!parsed) {
        return proxy_error(setting, "is not a valid URL");
    }
    const urls::url_view& url = *parsed;
    if (url.scheme_id() != urls::scheme::http) {
        return proxy_error(setting,
                           "must be an http:// proxy URL (the tunnel to IAM is TLS already)");
    }
    if (url.encoded_host().empty()) {
        return proxy_error(setting, "has no host");
    }

    ProxyEndpoint endpoint;
    endpoint.host = url.host_address();
    endpoint.port = url.has_port() ? std::string(url.port()) : std::string(default_proxy_port);
    if (!valid_port(endpoint.port)) {
        return proxy_error(setting, "has an invalid port");
    }
    if (url.has_userinfo()) {
        endpoint.authorization = basic_authorization(url.user(), url.password());
    }
    return endpoint;
}

std::string describe(const ProxySetting& setting) {
    auto endpoint = parse_proxy(setting);
    if (!endpoint) {
        return "an unusable proxy: " + endpoint.error();
    }
    return "proxy " + endpoint->name() + " (from " + setting.source + ")";
}

} // namespace iam_tokend
