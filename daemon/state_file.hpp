// Tokens that survive a restart: one state file per profile in `state_dir`.
//
// On each new token the profile's file `<state_dir>/<profile>.json` is
// replaced atomically, mode 0600 (the folder is made 0700): it holds the
// access token, the refresh token and what is needed to judge them later.
// At start, before the profile's source runs, the file is read back. The
// token is served at once, with no call to IAM, when it is still valid by
// every clock that can tell:
//   - the boot-time clock, when the machine has not rebooted since the save
//     (the same kernel boot id): the exact remaining life;
//   - the local clock against the saved `expiration`;
//   - the local clock against the token's own JWT `exp` claim.
// The shortest of these is the life it gets, and it is refreshed on the
// schedule it would have had. If the local clock reads earlier than when
// the file was saved, the clock is wrong and the token is not trusted. A
// token that fails any check is dropped, but its refresh token is kept: the
// first attempt then uses it instead of the API key.
//
// A file that cannot be read as ours (corrupt, another format, another
// profile, other credentials, not a regular file, owned by another user) is
// renamed to `<profile>.json.bad` with a warning, and the daemon logs in as
// usual. Nothing in a state file is ever logged.
#pragma once

#include "boot_clock.hpp"
#include "config.hpp"
#include "token_source.hpp"

#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace iam_tokend {

// A state file larger than this is not ours.
inline constexpr std::size_t max_state_file_bytes = 64 * 1024;
inline constexpr int state_format_version = 1;
inline constexpr mode_t state_file_mode = 0600;
inline constexpr mode_t state_dir_mode = 0700;

// What a state file holds.
struct SavedState {
    std::string profile;
    std::string identity;      // credential_identity() of the profile it was saved for
    std::int64_t saved_at = 0; // Unix time by the local clock
    std::string boot_id;
    std::int64_t obtained_at_boot_ns = 0; // BootClock, valid within boot_id only
    std::int64_t expires_at_boot_ns = 0;
    double life_s = 0;
    std::int64_t expiration = 0; // Unix time by the local clock
    std::optional<std::int64_t> iam_expiration;
    std::string token_type;
    std::string access_token;
    std::optional<std::string> uaa_token; // with response_type "cloud_iam,uaa"
    std::optional<std::string> refresh_token;
};

// The state in a file's text, or why it is not a state file of ours.
struct DecodedState {
    std::optional<SavedState> state;
    std::string problem; // set when there is no state
};

std::string encode_state(const SavedState& state);
DecodedState decode_state(std::string_view text);

// A digest of everything a token depends on (IAM URL, client, grant, user,
// response type and the secret itself), so a token saved for other
// credentials is never served. The digest does not reveal the secret.
std::string credential_identity(const Profile& profile, std::string_view secret);

// The current kernel boot id, or empty when it cannot be read.
std::string current_boot_id();

struct ClockReadings {
    BootClock::time_point boot;
    std::chrono::system_clock::time_point wall;
    std::string boot_id;
};

// A saved token as a source can adopt it, or why it cannot be used; the
// refresh token is handed back either way.
struct RestoredState {
    std::optional<Token> token;
    std::string rejected_because; // set when there is no token
    std::optional<std::string> refresh_token;
};

RestoredState restore_state(SavedState state, const ClockReadings& now);

// Makes the folder (mode 0700) or tightens an existing one of ours to 0700.
// Returns what went wrong, if anything.
std::optional<std::string> prepare_state_dir(const std::string& folder);

// One profile's state file, attached to its source.
class StateFile {
public:
    StateFile(std::string path, std::string profile, std::string identity);

    // Reads the saved state into `source` (see adopt()), then saves each new
    // token. Attach it after every other listener, so they see the restored
    // token too.
    static void attach(TokenSource& source, const std::string& folder);

    void restore_into(TokenSource& source);
    void on_event(const TokenSource& source, SourceEvent event);
    boost::json::value status() const;

private:
    std::optional<SavedState> load();
    void set_aside(const std::string& why);
    void save(const TokenSource& source, const Token& token);

    std::string path_;
    std::string profile_;
    std::string identity_;
    bool restored_ = false;
    std::optional<std::chrono::system_clock::time_point> saved_at_;
    std::optional<std::string> last_error_;
};

} // namespace iam_tokend
