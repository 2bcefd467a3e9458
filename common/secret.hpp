// Reading a profile's secret (API key or password) from where the config says.
// The value is never logged and never part of an error message; messages name
// the source (file path, variable or credential) and what went wrong.
#pragma once

#include "config.hpp"

#include <boost/system/result.hpp>

#include <string>

namespace iam_tokend {

// Reads the secret. Trailing newlines and spaces are trimmed; an empty
// secret is an error. On failure the error string names the source.
struct SecretResult {
    std::string value;
    std::string error; // empty on success
    bool ok() const { return error.empty(); }
};

SecretResult load_secret(const SecretSource& source);

} // namespace iam_tokend
