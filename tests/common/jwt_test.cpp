#include "jwt.hpp"

#include <gtest/gtest.h>

#include <string>

namespace iam_tokend {
namespace {

// {"alg":"none"} . {"sub":"x","exp":1700000000} . signature
const std::string header = "eyJhbGciOiJub25lIn0";
const std::string with_exp = "eyJzdWIiOiJ4IiwiZXhwIjoxNzAwMDAwMDAwfQ";

TEST(Jwt, ReadsTheExpClaim) {
    EXPECT_EQ(jwt_expiry(header + "." + with_exp + ".c2ln"), 1700000000);
}

TEST(Jwt, ReadsAPayloadThatNeedsPadding) {
    // {"exp":12} is 10 bytes: its base64url form needs two padding characters.
    EXPECT_EQ(jwt_expiry(header + ".eyJleHAiOjEyfQ.x"), 12);
}

TEST(Jwt, AcceptsAFractionalExp) {
    // {"exp":1.5e3}
    EXPECT_EQ(jwt_expiry(header + ".eyJleHAiOjEuNWUzfQ.x"), 1500);
}

TEST(Jwt, RefusesWhatIsNotAJwtWithExp) {
    EXPECT_FALSE(jwt_expiry(""));
    EXPECT_FALSE(jwt_expiry("opaque-token"));
    EXPECT_FALSE(jwt_expiry(header + "." + with_exp));        // no second dot
    EXPECT_FALSE(jwt_expiry(header + ".!!!!.x"));             // not base64url
    EXPECT_FALSE(jwt_expiry(header + ".eyJl+HAiOjEyfQ.x"));   // standard alphabet
    EXPECT_FALSE(jwt_expiry(header + ".bm90IGpzb24.x"));      // "not json"
    EXPECT_FALSE(jwt_expiry(header + ".eyJzdWIiOiJ4In0.x"));  // {"sub":"x"}
    EXPECT_FALSE(jwt_expiry(header + ".eyJleHAiOiIxMiJ9.x")); // {"exp":"12"}
    EXPECT_FALSE(jwt_expiry(std::string(max_jwt_length + 1, 'a')));
}

} // namespace
} // namespace iam_tokend
