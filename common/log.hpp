// Logging set-up and the logging contract.
//
// What each level means here:
//   error  a profile cannot get a token (none held, or the credential is bad);
//   warn   a refresh failed but a token is still valid, a client was refused,
//          a reload was rejected;
//   info   start, stop, reload, each new token with its expiry and fingerprint;
//   debug  everything else (each IAM exchange, each schedule decision);
//   trace  each local request.
// Every line about a profile names it as `[profile NAME]`. Secrets (API keys,
// passwords, access and refresh tokens) are never logged; a token is named
// by its fingerprint (see fingerprint()).
//
// Lines go to stderr. Under journald (JOURNAL_STREAM set, or format
// "journal") each line starts with its syslog priority, e.g. `<4>`, and has
// no timestamp, since the journal adds its own.
#pragma once

#include "config.hpp"

#include <string>
#include <string_view>

namespace iam_tokend {

// Installs the stderr logger as spdlog's default. Safe to call again on
// reload to change the level or format.
void setup_logging(const LogSettings& settings);

// The last four hex digits of the token's SHA-256: enough to tell tokens
// apart in logs and `status`, useless for recovering the token.
std::string fingerprint(std::string_view secret);

} // namespace iam_tokend
