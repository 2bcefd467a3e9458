// A profile's token written to a file, for programs that can only read one.
//
// Each new token replaces the file atomically (see atomic_file.hpp), so a
// reader sees the old token or the new one, never part of either. The file
// is not removed when its token stops being servable: it keeps the last
// token, a warning is logged, and the profile's `sink` section in /v1/status
// says "expired" until a new token has been written. A file left by an
// earlier run is reported as "stale" until the first write of this run.
#pragma once

#include "config.hpp"
#include "token_source.hpp"

#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace iam_tokend {

class FileSink {
public:
    FileSink(std::string profile, SinkSettings settings, Seconds min_valid);

    // Writes the file on each of `source`'s new tokens and adds the `sink`
    // section to its status. The source keeps the sink alive.
    static void attach(TokenSource& source);

    // The file's content for `token` in the configured format: the bare
    // token (raw), "Bearer <token>" (header), both without a newline, or a
    // JSON object like GET /v1/token's as of `now` (json).
    std::string content(const Token& token, BootClock::time_point now) const;

    void on_event(const TokenSource& source, SourceEvent event);
    boost::json::value status() const;

private:
    struct Written {
        std::string fingerprint;
        BootClock::time_point expires_at;
        std::chrono::system_clock::time_point at;
    };

    void write(const Token& token);

    std::string profile_;
    SinkSettings settings_;
    Seconds min_valid_;
    bool stale_file_ = false; // the file predates this run and was not yet replaced
    std::optional<Written> written_;
    std::optional<std::string> last_error_;
    std::uint64_t writes_ = 0;
};

} // namespace iam_tokend
