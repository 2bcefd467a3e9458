#include "state_file.hpp"

#include "atomic_file.hpp"
#include "jwt.hpp"
#include "log.hpp"

#include <boost/json.hpp>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace iam_tokend {
namespace json = boost::json;

namespace {

constexpr std::string_view state_format_name = "iam-tokend-state";
constexpr const char* boot_id_path = "/proc/sys/kernel/random/boot_id";
constexpr std::string_view set_aside_suffix = ".bad";

using Wall = std::chrono::system_clock;

std::int64_t unix_time(Wall::time_point at) {
    return std::chrono::floor<std::chrono::seconds>(at.time_since_epoch()).count();
}

std::int64_t nanoseconds(BootClock::time_point at) {
    return at.time_since_epoch().count();
}

json::value optional_json(const std::optional<std::int64_t>& value) {
    return value ? json::value(*value) : json::value(nullptr);
}

// The fields of a state file, read with the checks that make it ours.
class Reader {
public:
    explicit Reader(const json::object& object) : object_(object) {}

    std::string text(std::string_view key) {
        const json::value* value = object_.if_contains(key);
        if (value == nullptr || !value->is_string()) {
            fail(key);
            return {};
        }
        return std::string(value->get_string());
    }

    std::optional<std::string> optional_text(std::string_view key) {
        const json::value* value = object_.if_contains(key);
        if (value != nullptr && value->is_null()) {
            return std::nullopt;
        }
        return text(key);
    }

    std::int64_t integer(std::string_view key) {
        const json::value* value = object_.if_contains(key);
        if (value == nullptr || !value->is_int64()) {
            fail(key);
            return 0;
        }
        return value->get_int64();
    }

    std::optional<std::int64_t> optional_integer(std::string_view key) {
        const json::value* value = object_.if_contains(key);
        if (value != nullptr && value->is_null()) {
            return std::nullopt;
        }
        return integer(key);
    }

    double number(std::string_view key) {
        const json::value* value = object_.if_contains(key);
        if (value == nullptr || !value->is_number()) {
            fail(key);
            return 0;
        }
        return value->to_number<double>();
    }

    // The first field that was missing or of the wrong type.
    const std::optional<std::string>& problem() const { return problem_; }

private:
    void fail(std::string_view key) {
        if (!problem_) {
            problem_ = "field " + std::string(key) + " is missing or has the wrong type";
        }
    }

    const json::object& object_;
    std::optional<std::string> problem_;
};

struct FileText {
    std::string text;
    std::string problem; // set on failure
    bool missing = false;
};

FileText unreadable(std::string problem) {
    return {{}, std::move(problem), false};
}

// Reads a file that must be a small regular file owned by this user.
FileText read_own_file(const std::string& path) {
    int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT) {
            return {{}, "it does not exist", true};
        }
        return unreadable(errno == ELOOP ? "it is a symbolic link" : std::strerror(errno));
    }
    std::unique_ptr<int, void (*)(const int*)> closer(&fd,
                                                      [](const int* open_fd) { close(*open_fd); });

    struct stat info {};
    if (fstat(fd, &info) != 0) {
        return unreadable(std::strerror(errno));
    }
    if (!S_ISREG(info.st_mode)) {
        return unreadable("it is not a regular file");
    }
    if (info.st_uid != geteuid()) {
        return unreadable("it belongs to user " + std::to_string(info.st_uid) +
                          ", not to the daemon's");
    }
    if (static_cast<std::size_t>(info.st_size) > max_state_file_bytes) {
        return unreadable("it is too large to be a state file");
    }

    std::string text(static_cast<std::size_t>(info.st_size), '\0');
    ssize_t got = pread(fd, text.data(), text.size(), 0);
    if (got != static_cast<ssize_t>(text.size())) {
        return unreadable("it could not be read whole");
    }
    return {std::move(text), {}, false};
}

std::string sha256_hex(std::string_view data) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int length = 0;
    EVP_Digest(data.data(), data.size(), digest.data(), &length, EVP_sha256(), nullptr);
    constexpr std::string_view hex = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < length; ++i) {
        out += hex[digest[i] >> 4U];
        out += hex[digest[i] & 0xfU];
    }
    return out;
}

void wipe(std::string& secret) {
    OPENSSL_cleanse(secret.data(), secret.size());
}

} // namespace

std::string encode_state(const SavedState& state) {
    json::object token{
        {"access_token", state.access_token},
        {"token_type", state.token_type},
        {"obtained_at_boot_ns", state.obtained_at_boot_ns},
        {"expires_at_boot_ns", state.expires_at_boot_ns},
        {"life_s", state.life_s},
        {"expiration", state.expiration},
        {"iam_expiration", optional_json(state.iam_expiration)},
        {"uaa_token", state.uaa_token ? json::value(*state.uaa_token) : json::value(nullptr)},
    };
    json::object root{
        {"format", state_format_name},
        {"version", state_format_version},
        {"profile", state.profile},
        {"identity", state.identity},
        {"saved_at", state.saved_at},
        {"boot_id", state.boot_id},
        {"token", std::move(token)},
        {"refresh_token",
         state.refresh_token ? json::value(*state.refresh_token) : json::value(nullptr)},
    };
    return json::serialize(root) + "\n";
}

DecodedState decode_state(std::string_view text) {
    boost::system::error_code ec;
    json::value root = json::parse(text, ec);
    if (ec || !root.is_object()) {
        return {std::nullopt, "it is not a JSON object"};
    }
    const json::object& object = root.get_object();
    const json::value* format = object.if_contains("format");
    if (format == nullptr || !format->is_string() || format->get_string() != state_format_name) {
        return {std::nullopt, "it is not an iam-tokend state file"};
    }
    const json::value* version = object.if_contains("version");
    if (version == nullptr || !version->is_int64() ||
        version->get_int64() != state_format_version) {
        return {std::nullopt, "it has a state format version this daemon does not know"};
    }
    const json::value* token_value = object.if_contains("token");
    if (token_value == nullptr || !token_value->is_object()) {
        return {std::nullopt, "field token is missing or has the wrong type"};
    }

    SavedState state;
    Reader top(object);
    state.profile = top.text("profile");
    state.identity = top.text("identity");
    state.saved_at = top.integer("saved_at");
    state.boot_id = top.text("boot_id");
    state.refresh_token = top.optional_text("refresh_token");

    Reader token(token_value->get_object());
    state.access_token = token.text("access_token");
    state.token_type = token.text("token_type");
    state.obtained_at_boot_ns = token.integer("obtained_at_boot_ns");
    state.expires_at_boot_ns = token.integer("expires_at_boot_ns");
    state.life_s = token.number("life_s");
    state.expiration = token.integer("expiration");
    state.iam_expiration = token.optional_integer("iam_expiration");
    state.uaa_token = token.optional_text("uaa_token");

    if (const auto& problem = top.problem() ? top.problem() : token.problem()) {
        return {std::nullopt, *problem};
    }
    if (state.access_token.empty() || !(state.life_s > 0)) {
        return {std::nullopt, "it holds no usable token"};
    }
    return {std::move(state), {}};
}

std::string credential_identity(const Profile& profile, std::string_view secret) {
    std::string material = "iam-tokend state identity 1\n";
    // Held here: a temporary in the list below would be gone before the loop.
    std::string username = profile.username.value_or("");
    for (std::string_view part :
         {std::string_view(profile.iam_url),
          std::string_view(profile.client_id),
          std::string_view(profile.grant == Grant::password ? "password" : "apikey"),
          std::string_view(username),
          std::string_view(profile.response_type),
          secret}) {
        material += std::to_string(part.size()) + ":";
        material += part;
        material += "\n";
    }
    std::string digest = sha256_hex(material);
    wipe(material);
    return digest;
}

std::string current_boot_id() {
    std::ifstream file(boot_id_path);
    std::string id;
    std::getline(file, id);
    return id;
}

RestoredState restore_state(SavedState state, const ClockReadings& now) {
    RestoredState restored;
    restored.refresh_token = std::move(state.refresh_token);

    if (unix_time(now.wall) < state.saved_at) {
        restored.rejected_because = "the local clock reads earlier than when the token was saved";
        return restored;
    }
    auto jwt_exp = jwt_expiry(state.access_token);
    if (!jwt_exp) {
        restored.rejected_because = "the token has no readable exp claim";
        return restored;
    }

    // The shortest remaining life any clock allows.
    using std::chrono::seconds;
    BootClock::duration left = seconds(state.expiration) - seconds(unix_time(now.wall));
    left = std::min(left, BootClock::duration(seconds(*jwt_exp) - seconds(unix_time(now.wall))));
    bool same_boot = !state.boot_id.empty() && state.boot_id == now.boot_id;
    if (same_boot) {
        BootClock::time_point expires_at{BootClock::duration(state.expires_at_boot_ns)};
        left = std::min(left, expires_at - now.boot);
    }
    if (left <= BootClock::duration::zero()) {
        restored.rejected_because = "the token has expired";
        return restored;
    }

    Token token;
    token.access_token = std::move(state.access_token);
    token.token_type = std::move(state.token_type);
    token.fingerprint = fingerprint(token.access_token);
    token.expires_at = now.boot + left;
    token.obtained_at =
        token.expires_at - std::chrono::duration_cast<BootClock::duration>(Seconds(state.life_s));
    token.expiration = now.wall + std::chrono::duration_cast<Wall::duration>(left);
    token.iam_expiration = state.iam_expiration;
    token.uaa_token = std::move(state.uaa_token);
    restored.token = std::move(token);
    return restored;
}

std::optional<std::string> prepare_state_dir(const std::string& folder) {
    if (mkdir(folder.c_str(), state_dir_mode) == 0) {
        return std::nullopt;
    }
    if (errno != EEXIST) {
        return "cannot create " + folder + ": " + std::strerror(errno);
    }
    struct stat info {};
    if (stat(folder.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
        return folder + " is not a folder";
    }
    if ((info.st_mode & 077) != 0 && info.st_uid == geteuid()) {
        chmod(folder.c_str(), state_dir_mode);
    }
    return std::nullopt;
}

StateFile::StateFile(std::string path, std::string profile, std::string identity)
    : path_(std::move(path)),
      profile_(std::move(profile)),
      identity_(std::move(identity)) {}

void StateFile::attach(TokenSource& source, const std::string& folder) {
    const Profile& profile = source.profile();
    auto file = std::make_shared<StateFile>(folder + "/" + profile.name + ".json",
                                            profile.name,
                                            credential_identity(profile, source.secret()));
    file->restore_into(source);
    source.add_listener(
        [file](const TokenSource& changed, SourceEvent event) { file->on_event(changed, event); });
    source.add_status_section("state_file", [file] { return file->status(); });
}

void StateFile::restore_into(TokenSource& source) {
    auto saved = load();
    if (!saved) {
        return;
    }
    ClockReadings now{BootClock::now(), Wall::now(), current_boot_id()};
    auto restored = restore_state(std::move(*saved), now);
    bool had_refresh_token = restored.refresh_token.has_value();
    bool had_token = restored.token.has_value();
    restored_ = source.adopt(std::move(restored.token), std::move(restored.refresh_token));
    if (restored_) {
        return;
    }

    std::string why = had_token ? "it has less than min_valid_s left" : restored.rejected_because;
    spdlog::info("[profile {}] not serving the token saved in {}: {}{}",
                 profile_,
                 path_,
                 why,
                 had_refresh_token ? "; its refresh token is used instead" : "");
}

std::optional<SavedState> StateFile::load() {
    FileText file = read_own_file(path_);
    if (!file.problem.empty()) {
        if (!file.missing) {
            set_aside(file.problem);
        }
        return std::nullopt;
    }

    DecodedState decoded = decode_state(file.text);
    wipe(file.text);
    auto& state = decoded.state;
    if (!state) {
        set_aside(decoded.problem);
        return std::nullopt;
    }
    if (state->profile != profile_) {
        set_aside("it was saved for profile " + state->profile);
        return std::nullopt;
    }
    if (state->identity != identity_) {
        set_aside("it was saved for other credentials or another IAM endpoint");
        return std::nullopt;
    }
    return state;
}

void StateFile::set_aside(const std::string& why) {
    std::string aside = path_ + std::string(set_aside_suffix);
    if (rename(path_.c_str(), aside.c_str()) != 0) {
        spdlog::warn("[profile {}] ignoring state file {}: {}; it could not be moved aside: {}",
                     profile_,
                     path_,
                     why,
                     std::strerror(errno));
        return;
    }
    spdlog::warn("[profile {}] state file {} is not usable ({}); moved it to {} and logging in",
                 profile_,
                 path_,
                 why,
                 aside);
}

void StateFile::on_event(const TokenSource& source, SourceEvent event) {
    auto token = source.latest();
    if (event != SourceEvent::new_token || !token || token->restored) {
        return;
    }
    save(source, *token);
}

void StateFile::save(const TokenSource& source, const Token& token) {
    SavedState state;
    state.profile = profile_;
    state.identity = identity_;
    state.saved_at = unix_time(Wall::now());
    state.boot_id = current_boot_id();
    state.obtained_at_boot_ns = nanoseconds(token.obtained_at);
    state.expires_at_boot_ns = nanoseconds(token.expires_at);
    state.life_s = std::chrono::duration<double>(token.expires_at - token.obtained_at).count();
    state.expiration = unix_time(token.expiration);
    state.iam_expiration = token.iam_expiration;
    state.token_type = token.token_type;
    state.access_token = token.access_token;
    state.uaa_token = token.uaa_token;
    state.refresh_token = source.refresh_token();

    std::string text = encode_state(state);
    wipe(state.access_token);
    if (state.uaa_token) {
        wipe(*state.uaa_token);
    }
    if (state.refresh_token) {
        wipe(*state.refresh_token);
    }
    auto problem = write_file_atomically(path_, text, state_file_mode);
    wipe(text);
    if (problem) {
        spdlog::warn("[profile {}] cannot save token {}: {}",
                     profile_,
                     token.fingerprint,
                     *problem);
        last_error_ = std::move(problem);
        return;
    }
    last_error_.reset();
    saved_at_ = Wall::now();
    spdlog::debug("[profile {}] saved token {} to {}", profile_, token.fingerprint, path_);
}

json::value StateFile::status() const {
    return {
        {"path", path_},
        {"restored", restored_},
        {"saved_at", saved_at_ ? json::value(unix_time(*saved_at_)) : json::value(nullptr)},
        {"last_error", last_error_ ? json::value(*last_error_) : json::value(nullptr)},
    };
}

} // namespace iam_tokend
