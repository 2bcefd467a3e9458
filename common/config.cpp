// Parsing and validating the config file (DESIGN §6).
//
// A Validator walks the JSON document one section at a time. Each reader
// looks one key up, checks its type and range, and either stores the value
// in the Config or records a problem and leaves the default in place. No
// reader stops the walk, so a single pass reports everything wrong with a
// file. Relative paths are resolved as they are read. The Config is handed
// out only when no problem was found.
//
// Values are quoted back in messages only where they cannot be secret
// (modes, enumerations, profile names); URLs may carry a proxy password and
// client_secret is a credential, so their messages describe the fault only.
//
// Known shortcoming: Boost.JSON keeps the last of duplicate keys in an
// object, so a key written twice is not reported.
#include "config.hpp"

#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <span>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace iam_tokend {
namespace {

namespace json = boost::json;
namespace urls = boost::urls;

// A config file is a few kilobytes; anything past this is not one.
constexpr std::size_t max_config_bytes = std::size_t{1024} * 1024;
constexpr std::size_t read_chunk_bytes = 4096;

// Durations end up as integer nanoseconds in clocks and timers; a week keeps
// every setting far from overflow and is longer than any sensible value.
constexpr double max_seconds = 7 * 24 * 3600.0;

constexpr mode_t max_mode = 0777;
constexpr std::size_t max_mode_digits = 4;

// An interval that a fraction must lie in; the upper end is always open.
struct Range {
    double low;
    bool low_included;
    double high;
};

constexpr Range at_fraction_range{0, false, 1};
// The jitter is applied on both sides of at_fraction and must stay under
// half the life, or a refresh could be scheduled at the very start.
constexpr Range jitter_fraction_range{0, true, 0.5};

// Whether a number of seconds may be zero.
enum class Zero { refused, allowed };

using KeyList = std::span<const std::string_view>;

std::string join(std::string_view path, std::string_view key) {
    if (path.empty()) {
        return std::string(key);
    }
    std::string joined(path);
    joined += '.';
    joined += key;
    return joined;
}

std::string format_number(double value) {
    std::array<char, 32> buffer{};
    std::to_chars_result end = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
    return {buffer.data(), end.ptr};
}

std::string in_quotes(std::string_view text) {
    std::string out = "\"";
    out += text;
    out += '"';
    return out;
}

const char* kind_name(const json::value& value) {
    switch (value.kind()) {
    case json::kind::null:
        return "null";
    case json::kind::bool_:
        return "boolean";
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
    return "value";
}

std::optional<double> as_double(const json::value& value) {
    switch (value.kind()) {
    case json::kind::int64:
        return static_cast<double>(value.get_int64());
    case json::kind::uint64:
        return static_cast<double>(value.get_uint64());
    case json::kind::double_:
        return value.get_double();
    default:
        return std::nullopt;
    }
}

// Reads "0660"-style modes: up to four octal digits, no higher than 0777.
std::optional<mode_t> parse_octal(std::string_view text) {
    if (text.empty() || text.size() > max_mode_digits) {
        return std::nullopt;
    }
    mode_t mode = 0;
    for (char c : text) {
        if (c < '0' || c > '7') {
            return std::nullopt;
        }
        mode = static_cast<mode_t>(mode * 8 + static_cast<mode_t>(c - '0'));
    }
    return mode;
}

bool is_profile_name(std::string_view name) {
    // Profile names appear as a path segment in /v1/token/{profile}.
    if (name.empty() || name == "." || name == "..") {
        return false;
    }
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '.' || c == '-';
    });
}

// What is wrong with an IAM token URL, or nothing.
std::optional<std::string> iam_url_problem(std::string_view text) {
    auto parsed = urls::parse_uri(text);
    if (!parsed) {
        return "not a valid absolute URL";
    }
    const urls::url_view& url = *parsed;
    if (url.scheme_id() != urls::scheme::https) {
        return "must be an https:// URL (IAM is only reached over TLS)";
    }
    if (!url.has_authority() || url.encoded_host().empty()) {
        return "has no host";
    }
    if (url.has_userinfo()) {
        return "must not contain user info (user:password@)";
    }
    if (url.has_fragment()) {
        return "must not have a fragment (#...)";
    }
    return std::nullopt;
}

// What is wrong with an HTTP proxy URL, or nothing. The proxy is asked to
// CONNECT, so only its scheme, credentials, host and port mean anything.
std::optional<std::string> proxy_url_problem(std::string_view text) {
    auto parsed = urls::parse_uri(text);
    if (!parsed) {
        return "not a valid absolute URL";
    }
    const urls::url_view& url = *parsed;
    if (url.scheme_id() != urls::scheme::http) {
        return "must be an http:// URL";
    }
    if (!url.has_authority() || url.encoded_host().empty()) {
        return "has no host";
    }
    if (!url.encoded_path().empty() && url.encoded_path() != "/") {
        return "must not have a path";
    }
    if (url.has_query() || url.has_fragment()) {
        return "must not have a query or fragment";
    }
    return std::nullopt;
}

// What is wrong with the name of an environment variable or a credential.
std::optional<std::string> source_name_problem(SecretSource::Kind kind, std::string_view name) {
    if (kind == SecretSource::Kind::env) {
        if (name.empty() || name.find('=') != std::string_view::npos) {
            return "must be a variable name (non-empty, no '=')";
        }
        return std::nullopt;
    }

    // A credential is a file name inside $CREDENTIALS_DIRECTORY.
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string_view::npos) {
        return "must be a credential name (a plain file name, no '/')";
    }
    return std::nullopt;
}

template <typename Enum>
struct Choice {
    std::string_view name;
    Enum value;
};

constexpr auto grant_choices = std::to_array<Choice<Grant>>({
    {"apikey", Grant::apikey},
    {"password", Grant::password},
});
constexpr auto log_format_choices = std::to_array<Choice<LogFormat>>({
    {"auto", LogFormat::automatic},
    {"text", LogFormat::text},
    {"journal", LogFormat::journal},
});
constexpr auto sink_format_choices = std::to_array<Choice<SinkFormat>>({
    {"raw", SinkFormat::raw},
    {"header", SinkFormat::header},
    {"json", SinkFormat::json},
});
constexpr auto log_level_choices = std::to_array<Choice<std::string_view>>({
    {"trace", "trace"},
    {"debug", "debug"},
    {"info", "info"},
    {"warn", "warn"},
    {"error", "error"},
});
constexpr auto response_type_choices = std::to_array<Choice<std::string_view>>({
    {"cloud_iam", "cloud_iam"},
    {"cloud_iam,uaa", "cloud_iam,uaa"},
});

// The keys that may hold a profile's secret, for one grant.
struct SecretKeys {
    std::string_view file;
    std::string_view env;
    std::string_view credential;
    std::string_view what; // for messages: "API key", "password"
};

constexpr SecretKeys api_key_keys{"api_key_file", "api_key_env", "api_key_credential", "API key"};
constexpr SecretKeys password_keys{"password_file",
                                   "password_env",
                                   "password_credential",
                                   "password"};

constexpr auto top_keys = std::to_array<std::string_view>(
    {"socket", "log", "state_dir", "startup_timeout_s", "default_profile", "profiles"});
constexpr auto socket_keys = std::to_array<std::string_view>(
    {"path", "mode", "group", "request_timeout_s", "idle_timeout_s"});
constexpr auto log_keys = std::to_array<std::string_view>({"level", "format"});
constexpr auto profile_keys = std::to_array<std::string_view>({"iam_url",
                                                               "grant",
                                                               "api_key_file",
                                                               "api_key_env",
                                                               "api_key_credential",
                                                               "username",
                                                               "password_file",
                                                               "password_env",
                                                               "password_credential",
                                                               "client_id",
                                                               "client_secret",
                                                               "response_type",
                                                               "ca_file",
                                                               "proxy",
                                                               "timeouts",
                                                               "refresh",
                                                               "allow",
                                                               "sink"});
constexpr auto timeouts_keys = std::to_array<std::string_view>({"connect_s", "request_s"});
constexpr auto refresh_keys = std::to_array<std::string_view>(
    {"at_fraction", "jitter_fraction", "min_valid_s", "backoff_initial_s", "backoff_max_s"});
constexpr auto allow_keys = std::to_array<std::string_view>({"uids", "gids"});
constexpr auto sink_keys = std::to_array<std::string_view>({"path", "mode", "format"});

// One JSON object of the config and its key path, e.g. `profiles.a.refresh`.
struct Section {
    const json::object& object;
    std::string path;

    const json::value* find(std::string_view key) const { return object.if_contains(key); }
    std::string path_of(std::string_view key) const { return join(path, key); }
};

class Validator {
public:
    explicit Validator(std::string base_dir) : base_dir_(std::move(base_dir)) {}

    Config read(const json::value& root);
    std::vector<std::string> take_problems() { return std::move(problems_); }

private:
    void problem(std::string_view path, std::string_view what);
    void expected(std::string_view path, std::string_view what, const json::value& got);

    std::optional<Section> section(const Section& parent, std::string_view key, KeyList known);
    void reject_unknown_keys(const Section& section, KeyList known);

    const json::string* string_at(const Section& s, std::string_view key);
    bool read_string(const Section& s, std::string_view key, std::string& out);
    bool read_optional(const Section& s, std::string_view key, std::optional<std::string>& out);
    void read_path(const Section& s, std::string_view key, std::string& out);
    void
    read_optional_path(const Section& s, std::string_view key, std::optional<std::string>& out);
    bool read_seconds(const Section& s, std::string_view key, Seconds& out, Zero zero);
    bool read_fraction(const Section& s, std::string_view key, double& out, Range range);
    void read_mode(const Section& s, std::string_view key, mode_t& out);
    template <typename Enum, std::size_t N>
    bool read_choice(const Section& s,
                     std::string_view key,
                     Enum& out,
                     const std::array<Choice<Enum>, N>& choices);
    template <typename Id>
    void read_ids(const Section& s, std::string_view key, std::vector<Id>& out);

    void read_socket(const Section& root, SocketSettings& socket);
    void read_log(const Section& root, LogSettings& log);
    void read_profiles(const Section& root, Config& config);
    void read_default_profile(const Section& root, Config& config);
    Profile read_profile(const std::string& name, const Section& s);
    void read_iam_url(const Section& s, Profile& profile);
    void read_proxy(const Section& s, Profile& profile);
    void read_client(const Section& s, Profile& profile);
    void read_credentials(const Section& s, Profile& profile);
    void read_secret_source(const Section& s, const SecretKeys& keys, SecretSource& out);
    void reject_secret_keys(const Section& s, const SecretKeys& keys, std::string_view grant);
    void read_timeouts(const Section& s, Timeouts& timeouts);
    void read_refresh(const Section& s, RefreshSettings& refresh);
    void read_allow(const Section& s, AllowList& allow);
    void read_sink(const Section& s, SinkSettings& sink);

    std::string resolve(std::string_view path) const;

    std::string base_dir_;
    std::vector<std::string> problems_;
};

void Validator::problem(std::string_view path, std::string_view what) {
    std::string line;
    if (!path.empty()) {
        line += path;
        line += ": ";
    }
    line += what;
    problems_.push_back(std::move(line));
}

void Validator::expected(std::string_view path, std::string_view what, const json::value& got) {
    std::string message = "expected ";
    message += what;
    message += ", got ";
    message += kind_name(got);
    problem(path, message);
}

std::optional<Section>
Validator::section(const Section& parent, std::string_view key, KeyList known) {
    const json::value* value = parent.find(key);
    if (value == nullptr) {
        return std::nullopt;
    }
    std::string path = parent.path_of(key);
    if (!value->is_object()) {
        expected(path, "an object", *value);
        return std::nullopt;
    }

    Section child{value->get_object(), std::move(path)};
    reject_unknown_keys(child, known);
    return child;
}

void Validator::reject_unknown_keys(const Section& s, KeyList known) {
    for (const auto& entry : s.object) {
        if (std::find(known.begin(), known.end(), entry.key()) == known.end()) {
            problem(s.path_of(entry.key()), "unknown key");
        }
    }
}

const json::string* Validator::string_at(const Section& s, std::string_view key) {
    const json::value* value = s.find(key);
    if (value == nullptr) {
        return nullptr;
    }
    if (!value->is_string()) {
        expected(s.path_of(key), "a string", *value);
        return nullptr;
    }
    return &value->get_string();
}

// Returns whether a string was stored in `out`.
bool Validator::read_string(const Section& s, std::string_view key, std::string& out) {
    const json::string* text = string_at(s, key);
    if (text == nullptr) {
        return false;
    }
    out = std::string(text->begin(), text->end());
    return true;
}

// Reads a string or null; returns whether a string was stored in `out`.
bool Validator::read_optional(const Section& s,
                              std::string_view key,
                              std::optional<std::string>& out) {
    const json::value* value = s.find(key);
    if (value == nullptr) {
        return false;
    }
    if (value->is_null()) {
        out.reset();
        return false;
    }
    std::string text;
    if (!read_string(s, key, text)) {
        return false;
    }
    if (text.empty()) {
        problem(s.path_of(key), "must not be empty (use null to leave it unset)");
        return false;
    }
    out = std::move(text);
    return true;
}

void Validator::read_path(const Section& s, std::string_view key, std::string& out) {
    std::string text;
    if (!read_string(s, key, text)) {
        return;
    }
    if (text.empty()) {
        problem(s.path_of(key), "must not be empty");
        return;
    }
    out = resolve(text);
}

void Validator::read_optional_path(const Section& s,
                                   std::string_view key,
                                   std::optional<std::string>& out) {
    if (read_optional(s, key, out)) {
        out = resolve(*out);
    }
}

// Like read_fraction and read_choice, returns false only when a problem was
// recorded; an absent key keeps the default and counts as fine.
bool Validator::read_seconds(const Section& s, std::string_view key, Seconds& out, Zero zero) {
    const json::value* value = s.find(key);
    if (value == nullptr) {
        return true;
    }
    std::string path = s.path_of(key);
    std::optional<double> seconds = as_double(*value);
    if (!seconds) {
        expected(path, "a number of seconds", *value);
        return false;
    }

    bool allow_zero = zero == Zero::allowed;
    if (!std::isfinite(*seconds) || *seconds < 0 || (*seconds == 0 && !allow_zero)) {
        problem(path, allow_zero ? "must not be negative" : "must be greater than 0");
        return false;
    }
    if (*seconds > max_seconds) {
        problem(path, "must be at most " + format_number(max_seconds) + " (7 days)");
        return false;
    }
    out = Seconds(*seconds);
    return true;
}

bool Validator::read_fraction(const Section& s, std::string_view key, double& out, Range range) {
    const json::value* value = s.find(key);
    if (value == nullptr) {
        return true;
    }
    std::string path = s.path_of(key);
    std::optional<double> fraction = as_double(*value);
    if (!fraction) {
        expected(path, "a number", *value);
        return false;
    }

    bool above_low = range.low_included ? *fraction >= range.low : *fraction > range.low;
    if (!above_low || *fraction >= range.high) {
        std::string interval = std::string(range.low_included ? "[" : "(") +
                               format_number(range.low) + ", " + format_number(range.high) + ")";
        problem(path, "must be in " + interval);
        return false;
    }
    out = *fraction;
    return true;
}

void Validator::read_mode(const Section& s, std::string_view key, mode_t& out) {
    const json::value* value = s.find(key);
    if (value == nullptr) {
        return;
    }
    std::string path = s.path_of(key);
    if (!value->is_string()) {
        expected(path, "a string like \"0660\"", *value);
        return;
    }

    std::string_view text = value->get_string();
    std::optional<mode_t> mode = parse_octal(text);
    if (!mode) {
        problem(path, in_quotes(text) + " is not an octal mode like \"0660\"");
        return;
    }
    if (*mode > max_mode) {
        problem(path, in_quotes(text) + " sets bits beyond \"0777\"");
        return;
    }
    out = *mode;
}

template <typename Enum, std::size_t N>
bool Validator::read_choice(const Section& s,
                            std::string_view key,
                            Enum& out,
                            const std::array<Choice<Enum>, N>& choices) {
    const json::string* text = string_at(s, key);
    if (text == nullptr) {
        return s.find(key) == nullptr;
    }

    std::string_view name = *text;
    for (const Choice<Enum>& choice : choices) {
        if (choice.name == name) {
            out = choice.value;
            return true;
        }
    }

    std::string message = in_quotes(name) + " is not one of ";
    for (const Choice<Enum>& choice : choices) {
        message += &choice == &choices.front() ? "" : ", ";
        message += in_quotes(choice.name);
    }
    problem(s.path_of(key), message);
    return false;
}

template <typename Id>
void Validator::read_ids(const Section& s, std::string_view key, std::vector<Id>& out) {
    const json::value* value = s.find(key);
    if (value == nullptr) {
        return;
    }
    std::string path = s.path_of(key);
    if (!value->is_array()) {
        expected(path, "an array of ids", *value);
        return;
    }

    // The all-ones id means "no id" to the kernel, so it is not accepted.
    constexpr auto id_limit = std::numeric_limits<Id>::max();
    const json::array& items = value->get_array();
    for (std::size_t i = 0; i < items.size(); ++i) {
        std::string item_path = path + "[" + std::to_string(i) + "]";
        const json::value& item = items[i];
        if (item.is_int64() && item.get_int64() < 0) {
            problem(item_path, "must not be negative");
            continue;
        }
        if (item.is_double()) {
            problem(item_path, "must be a whole number");
            continue;
        }
        if (!item.is_int64() && !item.is_uint64()) {
            expected(item_path, "a non-negative integer", item);
            continue;
        }
        std::uint64_t id =
            item.is_int64() ? static_cast<std::uint64_t>(item.get_int64()) : item.get_uint64();
        if (id >= id_limit) {
            problem(item_path, "must be below " + std::to_string(id_limit));
            continue;
        }
        out.push_back(static_cast<Id>(id));
    }
}

std::string Validator::resolve(std::string_view path) const {
    if (base_dir_.empty() || path.front() == '/') {
        return std::string(path);
    }
    return (std::filesystem::path(base_dir_) / path).lexically_normal().string();
}

Config Validator::read(const json::value& root) {
    Config config;
    if (!root.is_object()) {
        problem("", std::string("the file must hold a JSON object, got ") + kind_name(root));
        return config;
    }

    Section top{root.get_object(), ""};
    reject_unknown_keys(top, top_keys);
    read_socket(top, config.socket);
    read_log(top, config.log);
    read_optional_path(top, "state_dir", config.state_dir);
    read_seconds(top, "startup_timeout_s", config.startup_timeout, Zero::refused);
    read_profiles(top, config);
    read_default_profile(top, config);
    return config;
}

void Validator::read_socket(const Section& root, SocketSettings& socket) {
    std::optional<Section> s = section(root, "socket", socket_keys);
    if (!s) {
        return;
    }
    read_path(*s, "path", socket.path);
    read_mode(*s, "mode", socket.mode);
    read_optional(*s, "group", socket.group);
    read_seconds(*s, "request_timeout_s", socket.request_timeout, Zero::refused);
    read_seconds(*s, "idle_timeout_s", socket.idle_timeout, Zero::refused);
}

void Validator::read_log(const Section& root, LogSettings& log) {
    std::optional<Section> s = section(root, "log", log_keys);
    if (!s) {
        return;
    }
    std::string_view level = log.level;
    if (read_choice(*s, "level", level, log_level_choices)) {
        log.level = std::string(level);
    }
    read_choice(*s, "format", log.format, log_format_choices);
}

void Validator::read_profiles(const Section& root, Config& config) {
    const json::value* value = root.find("profiles");
    if (value == nullptr) {
        problem("profiles", "is required (at least one profile)");
        return;
    }
    if (!value->is_object()) {
        expected("profiles", "an object", *value);
        return;
    }
    if (value->get_object().empty()) {
        problem("profiles", "must hold at least one profile");
        return;
    }

    Section profiles{value->get_object(), "profiles"};
    for (const auto& entry : profiles.object) {
        std::string name(entry.key());
        std::string path = profiles.path_of(name);
        if (!is_profile_name(name)) {
            problem(path,
                    "a profile name may only use letters, digits, '_', '.' and '-' "
                    "(and may not be \".\" or \"..\")");
        }
        if (!entry.value().is_object()) {
            expected(path, "an object", entry.value());
            continue;
        }

        Section s{entry.value().get_object(), path};
        reject_unknown_keys(s, profile_keys);
        config.profiles.emplace(name, read_profile(name, s));
    }
}

void Validator::read_default_profile(const Section& root, Config& config) {
    bool set = read_string(root, "default_profile", config.default_profile);
    if (root.find("default_profile") != nullptr && !set) {
        return;
    }
    if (config.profiles.empty()) {
        return;
    }

    // A file with a single profile needs no default_profile to name it.
    if (!set && config.profiles.size() == 1) {
        config.default_profile = config.profiles.begin()->first;
        return;
    }
    if (config.profiles.contains(config.default_profile)) {
        return;
    }
    if (set) {
        problem("default_profile", "no profile is named " + in_quotes(config.default_profile));
    } else {
        problem("default_profile",
                "not set, and there is no profile named \"default\" to fall back on");
    }
}

Profile Validator::read_profile(const std::string& name, const Section& s) {
    Profile profile;
    profile.name = name;
    read_iam_url(s, profile);
    read_credentials(s, profile);
    read_client(s, profile);
    read_optional_path(s, "ca_file", profile.ca_file);
    read_proxy(s, profile);

    if (auto timeouts = section(s, "timeouts", timeouts_keys)) {
        read_timeouts(*timeouts, profile.timeouts);
    }
    if (auto refresh = section(s, "refresh", refresh_keys)) {
        read_refresh(*refresh, profile.refresh);
    }
    if (auto allow = section(s, "allow", allow_keys)) {
        read_allow(*allow, profile.allow);
    }
    if (auto sink = section(s, "sink", sink_keys)) {
        read_sink(*sink, profile.sink);
    }
    return profile;
}

void Validator::read_iam_url(const Section& s, Profile& profile) {
    if (s.find("iam_url") == nullptr) {
        problem(s.path_of("iam_url"), "is required");
        return;
    }
    std::string url;
    if (!read_string(s, "iam_url", url)) {
        return;
    }
    if (auto what = iam_url_problem(url)) {
        problem(s.path_of("iam_url"), *what);
        return;
    }
    profile.iam_url = std::move(url);
}

void Validator::read_proxy(const Section& s, Profile& profile) {
    std::optional<std::string> proxy;
    if (!read_optional(s, "proxy", proxy)) {
        return;
    }
    if (auto what = proxy_url_problem(*proxy)) {
        problem(s.path_of("proxy"), *what);
        return;
    }
    profile.proxy = std::move(proxy);
}

void Validator::read_client(const Section& s, Profile& profile) {
    std::string client_id = profile.client_id;
    if (read_string(s, "client_id", client_id)) {
        // The id is the user part of HTTP Basic auth, which ends at a colon.
        if (client_id.empty() || client_id.find(':') != std::string::npos) {
            problem(s.path_of("client_id"), "must be non-empty and contain no ':'");
        } else {
            profile.client_id = std::move(client_id);
        }
    }
    read_string(s, "client_secret", profile.client_secret);

    std::string_view response_type = profile.response_type;
    if (read_choice(s, "response_type", response_type, response_type_choices)) {
        profile.response_type = std::string(response_type);
    }
}

// The grant decides which secret keys apply: the API key ones or the
// password ones (with a username). Keys of the other grant are errors, so a
// file cannot look as if it used a secret that it does not.
void Validator::read_credentials(const Section& s, Profile& profile) {
    if (!read_choice(s, "grant", profile.grant, grant_choices)) {
        return; // without a known grant, which secret keys apply is unknown
    }

    if (profile.grant == Grant::apikey) {
        reject_secret_keys(s, password_keys, "password");
        if (s.find("username") != nullptr) {
            problem(s.path_of("username"), R"(is only used with "grant": "password")");
        }
        read_secret_source(s, api_key_keys, profile.secret);
        return;
    }

    reject_secret_keys(s, api_key_keys, "apikey");
    read_secret_source(s, password_keys, profile.secret);
    std::string username;
    if (s.find("username") == nullptr) {
        problem(s.path_of("username"), R"(is required with "grant": "password")");
    } else if (read_string(s, "username", username)) {
        if (username.empty()) {
            problem(s.path_of("username"), "must not be empty");
        } else {
            profile.username = std::move(username);
        }
    }
}

void Validator::reject_secret_keys(const Section& s,
                                   const SecretKeys& keys,
                                   std::string_view grant) {
    for (std::string_view key : {keys.file, keys.env, keys.credential}) {
        if (s.find(key) != nullptr) {
            problem(s.path_of(key), "is only used with \"grant\": " + in_quotes(grant));
        }
    }
}

void Validator::read_secret_source(const Section& s, const SecretKeys& keys, SecretSource& out) {
    std::vector<std::string_view> present;
    for (std::string_view key : {keys.file, keys.env, keys.credential}) {
        if (s.find(key) != nullptr) {
            present.push_back(key);
        }
    }

    if (present.empty()) {
        problem(s.path,
                "no " + std::string(keys.what) + " source (set " + std::string(keys.file) + ", " +
                    std::string(keys.env) + " or " + std::string(keys.credential) + ")");
        return;
    }
    if (present.size() > 1) {
        std::string names(present[0]);
        for (std::size_t i = 1; i < present.size(); ++i) {
            names += i + 1 == present.size() ? " and " : ", ";
            names += present[i];
        }
        names += present.size() == 2 ? " are both set" : " are all set";
        problem(s.path, names + "; keep one " + std::string(keys.what) + " source");
        return;
    }

    std::string_view key = present.front();
    SecretSource source;
    source.key = std::string(key);
    if (key == keys.file) {
        source.kind = SecretSource::Kind::file;
        read_path(s, key, source.name);
    } else if (read_string(s, key, source.name)) {
        source.kind = key == keys.env ? SecretSource::Kind::env : SecretSource::Kind::credential;
        if (auto what = source_name_problem(source.kind, source.name)) {
            problem(s.path_of(key), *what);
        }
    }
    out = std::move(source);
}

void Validator::read_timeouts(const Section& s, Timeouts& timeouts) {
    read_seconds(s, "connect_s", timeouts.connect, Zero::refused);
    read_seconds(s, "request_s", timeouts.request, Zero::refused);
}

void Validator::read_refresh(const Section& s, RefreshSettings& refresh) {
    bool at_ok = read_fraction(s, "at_fraction", refresh.at_fraction, at_fraction_range);
    bool jitter_ok =
        read_fraction(s, "jitter_fraction", refresh.jitter_fraction, jitter_fraction_range);
    if (at_ok && jitter_ok &&
        (refresh.at_fraction - refresh.jitter_fraction <= 0 ||
         refresh.at_fraction + refresh.jitter_fraction >= 1)) {
        problem(s.path_of("jitter_fraction"),
                "at_fraction - jitter_fraction and at_fraction + jitter_fraction must both "
                "lie strictly between 0 and 1");
    }

    read_seconds(s, "min_valid_s", refresh.min_valid, Zero::allowed);
    bool initial_ok = read_seconds(s, "backoff_initial_s", refresh.backoff_initial, Zero::refused);
    bool max_ok = read_seconds(s, "backoff_max_s", refresh.backoff_max, Zero::refused);
    if (initial_ok && max_ok && refresh.backoff_max < refresh.backoff_initial) {
        problem(s.path_of("backoff_max_s"), "must not be below backoff_initial_s");
    }
}

void Validator::read_allow(const Section& s, AllowList& allow) {
    read_ids(s, "uids", allow.uids);
    read_ids(s, "gids", allow.gids);
}

void Validator::read_sink(const Section& s, SinkSettings& sink) {
    read_optional_path(s, "path", sink.path);
    read_mode(s, "mode", sink.mode);
    read_choice(s, "format", sink.format, sink_format_choices);
}

// Line and column (both from 1) of a byte offset, for parse errors.
std::pair<std::size_t, std::size_t> line_and_column(std::string_view text, std::size_t offset) {
    std::string_view before = text.substr(0, offset);
    std::size_t line = 1 + static_cast<std::size_t>(std::count(before.begin(), before.end(), '\n'));
    std::size_t line_start = before.rfind('\n');
    std::size_t column = line_start == std::string_view::npos ? offset + 1 : offset - line_start;
    return {line, column};
}

// Parses JSON with comments and trailing commas; on failure returns the
// message, with the place where the parser stopped.
std::optional<std::string> parse_json(std::string_view text, json::value& out) {
    if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
        return "the file is empty";
    }

    json::parse_options options;
    options.allow_comments = true;
    options.allow_trailing_commas = true;
    json::stream_parser parser({}, options);

    boost::system::error_code ec;
    std::size_t consumed = parser.write(text.data(), text.size(), ec);
    if (!ec) {
        parser.finish(ec);
    }
    if (ec) {
        auto [line, column] = line_and_column(text, consumed);
        return "not valid JSON: " + ec.message() + " at line " + std::to_string(line) +
               ", column " + std::to_string(column);
    }
    out = parser.release();
    return std::nullopt;
}

// Closes a descriptor when it goes out of scope.
class FileDescriptor {
public:
    explicit FileDescriptor(int fd) : fd_(fd) {}
    FileDescriptor(const FileDescriptor&) = delete;
    FileDescriptor& operator=(const FileDescriptor&) = delete;
    FileDescriptor(FileDescriptor&&) = delete;
    FileDescriptor& operator=(FileDescriptor&&) = delete;
    ~FileDescriptor() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    int get() const { return fd_; }

private:
    int fd_;
};

// Reads a whole file of at most max_config_bytes; on failure returns why.
std::optional<std::string> read_file(const std::string& path, std::string& out) {
    // O_NONBLOCK keeps a FIFO from blocking the open; it is refused below.
    FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (fd.get() < 0) {
        return std::string(std::strerror(errno));
    }

    struct stat info {};
    if (::fstat(fd.get(), &info) != 0) {
        return std::string(std::strerror(errno));
    }
    if (!S_ISREG(info.st_mode)) {
        return std::string("not a regular file");
    }

    std::array<char, read_chunk_bytes> buffer{};
    while (true) {
        ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return std::string(std::strerror(errno));
        }
        if (n == 0) {
            return std::nullopt;
        }
        out.append(buffer.data(), static_cast<std::size_t>(n));
        if (out.size() > max_config_bytes) {
            return "larger than " + std::to_string(max_config_bytes) + " bytes";
        }
    }
}

} // namespace

ConfigResult parse_config(std::string_view text, const std::string& base_dir) {
    ConfigResult result;
    json::value root;
    if (auto what = parse_json(text, root)) {
        result.problems.push_back(std::move(*what));
        return result;
    }

    Validator validator(base_dir);
    Config config = validator.read(root);
    result.problems = validator.take_problems();
    if (result.problems.empty()) {
        result.config = std::move(config);
    }
    return result;
}

ConfigResult load_config(const std::string& path) {
    std::string text;
    if (auto what = read_file(path, text)) {
        return ConfigResult{std::nullopt, {"cannot read the file: " + *what}};
    }

    std::error_code ec;
    std::filesystem::path absolute = std::filesystem::absolute(path, ec);
    std::string base_dir = ec ? std::string() : absolute.parent_path().string();
    return parse_config(text, base_dir);
}

} // namespace iam_tokend
