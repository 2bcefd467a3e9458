#include "state_file.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <string>
#include <vector>

namespace iam_tokend {
namespace {

using std::chrono::seconds;

constexpr std::int64_t wall_now = 1'800'000'000;
const BootClock::time_point boot_now{std::chrono::hours(10)};

std::string base64url(const std::string& data) {
    std::vector<unsigned char> out(4 * ((data.size() + 2) / 3) + 1);
    int length = EVP_EncodeBlock(out.data(),
                                 reinterpret_cast<const unsigned char*>(data.data()),
                                 static_cast<int>(data.size()));
    std::string text(out.begin(), out.begin() + length);
    for (char& c : text) {
        c = c == '+' ? '-' : c == '/' ? '_' : c;
    }
    return text.substr(0, text.find('='));
}

std::string jwt_expiring_at(std::int64_t exp) {
    return base64url(R"({"alg":"none"})") + "." +
           base64url(R"({"exp":)" + std::to_string(exp) + "}") + ".sig";
}

ClockReadings now(std::string boot_id = "boot-1") {
    return {boot_now, std::chrono::system_clock::time_point(seconds(wall_now)), boot_id};
}

// A token obtained 100 s ago with a life of 3600 s, saved in this boot.
SavedState saved() {
    SavedState state;
    state.profile = "default";
    state.identity = "id";
    state.saved_at = wall_now - 100;
    state.boot_id = "boot-1";
    auto obtained = boot_now - seconds(100);
    state.obtained_at_boot_ns = obtained.time_since_epoch().count();
    state.expires_at_boot_ns = (obtained + seconds(3600)).time_since_epoch().count();
    state.life_s = 3600;
    state.expiration = wall_now + 3500;
    state.iam_expiration = wall_now + 3500;
    state.token_type = "Bearer";
    state.access_token = jwt_expiring_at(wall_now + 3500);
    state.refresh_token = "refresh-secret";
    return state;
}

double seconds_left(const RestoredState& restored) {
    return std::chrono::duration<double>(restored.token->expires_at - boot_now).count();
}

TEST(StateFile, EncodesAndDecodesEveryField) {
    SavedState state = saved();
    DecodedState decoded = decode_state(encode_state(state));
    ASSERT_TRUE(decoded.state) << decoded.problem;
    const SavedState& back = *decoded.state;
    EXPECT_EQ(back.profile, state.profile);
    EXPECT_EQ(back.identity, state.identity);
    EXPECT_EQ(back.saved_at, state.saved_at);
    EXPECT_EQ(back.boot_id, state.boot_id);
    EXPECT_EQ(back.obtained_at_boot_ns, state.obtained_at_boot_ns);
    EXPECT_EQ(back.expires_at_boot_ns, state.expires_at_boot_ns);
    EXPECT_EQ(back.life_s, state.life_s);
    EXPECT_EQ(back.expiration, state.expiration);
    EXPECT_EQ(back.iam_expiration, state.iam_expiration);
    EXPECT_EQ(back.access_token, state.access_token);
    EXPECT_EQ(back.refresh_token, state.refresh_token);
    EXPECT_FALSE(back.uaa_token);
}

TEST(StateFile, KeepsTheUaaTokenBesideTheIamToken) {
    SavedState state = saved();
    state.uaa_token = "uaa-secret";
    DecodedState decoded = decode_state(encode_state(state));
    ASSERT_TRUE(decoded.state) << decoded.problem;
    EXPECT_EQ(decoded.state->uaa_token, "uaa-secret");

    auto restored = restore_state(*decoded.state, now());
    ASSERT_TRUE(restored.token) << restored.rejected_because;
    EXPECT_EQ(restored.token->uaa_token, "uaa-secret");
}

TEST(StateFile, RefusesFilesThatAreNotOurs) {
    EXPECT_EQ(decode_state("").problem, "it is not a JSON object");
    EXPECT_EQ(decode_state("[1]").problem, "it is not a JSON object");
    EXPECT_EQ(decode_state(R"({"format":"other"})").problem, "it is not an iam-tokend state file");
    EXPECT_EQ(decode_state(R"({"format":"iam-tokend-state","version":99})").problem,
              "it has a state format version this daemon does not know");

    std::string text = encode_state(saved());
    text.replace(text.find("\"saved_at\""), 10, "\"saved_on\"");
    EXPECT_EQ(decode_state(text).problem, "field saved_at is missing or has the wrong type");
}

TEST(StateFile, RestoresWithTheBootClocksRemainingLife) {
    auto restored = restore_state(saved(), now());
    ASSERT_TRUE(restored.token) << restored.rejected_because;
    EXPECT_DOUBLE_EQ(seconds_left(restored), 3500);
    EXPECT_EQ(restored.token->access_token, saved().access_token);
    // Refreshed on the schedule it had: obtained 100 s ago.
    EXPECT_EQ(restored.token->obtained_at, boot_now - seconds(100));
    EXPECT_EQ(restored.refresh_token, "refresh-secret");
}

TEST(StateFile, TakesTheShortestLifeAnyClockGives) {
    SavedState state = saved();
    state.access_token = jwt_expiring_at(wall_now + 1000);
    EXPECT_DOUBLE_EQ(seconds_left(restore_state(state, now())), 1000);

    state = saved();
    state.expiration = wall_now + 2000;
    EXPECT_DOUBLE_EQ(seconds_left(restore_state(state, now())), 2000);
}

TEST(StateFile, RefusesATokenAnyClockCallsExpired) {
    // The boot clock: the machine was suspended longer than the wall clock shows.
    SavedState state = saved();
    state.expires_at_boot_ns = (boot_now - seconds(1)).time_since_epoch().count();
    auto restored = restore_state(state, now());
    EXPECT_FALSE(restored.token);
    EXPECT_EQ(restored.rejected_because, "the token has expired");
    EXPECT_EQ(restored.refresh_token, "refresh-secret");

    state = saved();
    state.access_token = jwt_expiring_at(wall_now - 1);
    EXPECT_FALSE(restore_state(state, now()).token);

    state = saved();
    state.expiration = wall_now;
    EXPECT_FALSE(restore_state(state, now()).token);
}

TEST(StateFile, AfterARebootOnlyTheWallClockCounts) {
    SavedState state = saved();
    state.expires_at_boot_ns = 0; // meaningless in another boot
    auto restored = restore_state(state, now("boot-2"));
    ASSERT_TRUE(restored.token);
    EXPECT_DOUBLE_EQ(seconds_left(restored), 3500);
}

TEST(StateFile, DistrustsAClockThatWentBack) {
    SavedState state = saved();
    state.saved_at = wall_now + 1;
    auto restored = restore_state(state, now());
    EXPECT_FALSE(restored.token);
    EXPECT_EQ(restored.rejected_because,
              "the local clock reads earlier than when the token was saved");
}

TEST(StateFile, RefusesATokenWithoutExp) {
    SavedState state = saved();
    state.access_token = "opaque";
    EXPECT_EQ(restore_state(state, now()).rejected_because, "the token has no readable exp claim");
}

TEST(StateFile, IdentityChangesWithTheCredentials) {
    Profile profile;
    profile.iam_url = "https://iam.example/identity/token";
    std::string identity = credential_identity(profile, "key-1");
    EXPECT_EQ(identity.size(), 64U);
    EXPECT_EQ(identity, credential_identity(profile, "key-1"));
    EXPECT_NE(identity, credential_identity(profile, "key-2"));
    EXPECT_EQ(identity.find("key-1"), std::string::npos);

    Profile other = profile;
    other.iam_url = "https://iam.other/identity/token";
    EXPECT_NE(identity, credential_identity(other, "key-1"));
    other = profile;
    other.client_id = "cf";
    EXPECT_NE(identity, credential_identity(other, "key-1"));
    // The sink is not part of what the token depends on.
    other = profile;
    other.sink.path = "/run/token";
    EXPECT_EQ(identity, credential_identity(other, "key-1"));
}

} // namespace
} // namespace iam_tokend
