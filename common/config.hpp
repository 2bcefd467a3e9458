// The daemon's configuration: the JSON file of DESIGN §6, parsed and
// validated in one pass. Validation collects every problem it finds (each
// named by its key path, such as `profiles.default.refresh.at_fraction`)
// instead of stopping at the first, so an operator fixes a file in one go.
//
// Every default lives here, as an in-class initialiser, and nowhere else.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

namespace iam_tokend {

using Seconds = std::chrono::duration<double>;

enum class Grant { apikey, password };
enum class LogFormat { automatic, text, journal };
enum class SinkFormat { raw, header, json };

// Where a profile's secret comes from; exactly one must be configured.
struct SecretSource {
    enum class Kind { file, env, credential };
    Kind kind = Kind::file;
    std::string name; // a path, an environment variable or a credential name
    std::string key;  // the config key it came from, for messages

    bool operator==(const SecretSource&) const = default;
};

struct RefreshSettings {
    double at_fraction = 0.8;
    double jitter_fraction = 0.05;
    Seconds min_valid{60};
    Seconds backoff_initial{1};
    Seconds backoff_max{60};

    bool operator==(const RefreshSettings&) const = default;
};

struct Timeouts {
    Seconds connect{10};
    Seconds request{30};

    bool operator==(const Timeouts&) const = default;
};

struct AllowList {
    std::vector<uid_t> uids;
    std::vector<gid_t> gids;

    bool operator==(const AllowList&) const = default;
};

struct SinkSettings {
    std::optional<std::string> path;
    mode_t mode = 0640;
    SinkFormat format = SinkFormat::raw;

    bool operator==(const SinkSettings&) const = default;
};

struct Profile {
    std::string name;
    std::string iam_url;
    Grant grant = Grant::apikey;
    SecretSource secret;                 // the API key (or password for `password`)
    std::optional<std::string> username; // for `password`
    std::string client_id = "bx";
    std::string client_secret = "bx";
    std::string response_type = "cloud_iam";
    std::optional<std::string> ca_file;
    std::optional<std::string> proxy;
    Timeouts timeouts;
    RefreshSettings refresh;
    AllowList allow;
    SinkSettings sink;

    bool operator==(const Profile&) const = default;
};

struct SocketSettings {
    std::string path = "/run/iam-tokend/tokend.sock";
    mode_t mode = 0660;
    std::optional<std::string> group;
    // A client has this long to send a whole request (from its first byte,
    // or from connecting) and as long again to take the reply.
    Seconds request_timeout{10};
    // A kept-alive connection with no new request for this long is closed.
    Seconds idle_timeout{60};

    bool operator==(const SocketSettings&) const = default;
};

struct LogSettings {
    std::string level = "info"; // trace|debug|info|warn|error
    LogFormat format = LogFormat::automatic;

    bool operator==(const LogSettings&) const = default;
};

struct Config {
    SocketSettings socket;
    LogSettings log;
    std::optional<std::string> state_dir;
    Seconds startup_timeout{30};
    std::string default_profile = "default";
    std::map<std::string, Profile> profiles;

    bool operator==(const Config&) const = default;
};

inline constexpr const char* default_config_path = "/etc/iam-tokend/config.json";

// The outcome of loading a file: a config, or every problem found in it.
// Each problem reads `key.path: what is wrong` (or `what is wrong` when the
// file as a whole is at fault, e.g. unreadable or not JSON).
struct ConfigResult {
    std::optional<Config> config;
    std::vector<std::string> problems;
};

// Parses config text. Relative paths in it (socket.path, state_dir, the
// secret files, ca_file, sink.path) are resolved against `base_dir`; an
// empty `base_dir` leaves them as written.
ConfigResult parse_config(std::string_view text, const std::string& base_dir = {});

// Reads and parses the file at `path`; relative paths in it are resolved
// against the file's own folder.
ConfigResult load_config(const std::string& path);

} // namespace iam_tokend
