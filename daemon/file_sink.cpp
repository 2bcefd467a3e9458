#include "file_sink.hpp"

#include "atomic_file.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <spdlog/spdlog.h>

#include <memory>

#include <sys/stat.h>

namespace iam_tokend {
namespace json = boost::json;

namespace {

std::int64_t whole_seconds(BootClock::duration duration) {
    return std::chrono::floor<std::chrono::seconds>(duration).count();
}

std::int64_t unix_time(std::chrono::system_clock::time_point at) {
    return std::chrono::floor<std::chrono::seconds>(at.time_since_epoch()).count();
}

std::string_view to_string(SinkFormat format) {
    switch (format) {
    case SinkFormat::raw:
        return "raw";
    case SinkFormat::header:
        return "header";
    case SinkFormat::json:
        return "json";
    }
    return "raw";
}

} // namespace

FileSink::FileSink(std::string profile, SinkSettings settings, Seconds min_valid)
    : profile_(std::move(profile)),
      settings_(std::move(settings)),
      min_valid_(min_valid) {
    struct stat info {};
    stale_file_ = lstat(settings_.path->c_str(), &info) == 0;
}

void FileSink::attach(TokenSource& source) {
    const Profile& profile = source.profile();
    if (!profile.sink.path) {
        return;
    }
    auto sink = std::make_shared<FileSink>(profile.name, profile.sink, profile.refresh.min_valid);
    source.add_listener(
        [sink](const TokenSource& changed, SourceEvent event) { sink->on_event(changed, event); });
    source.add_status_section("sink", [sink] { return sink->status(); });
}

std::string FileSink::content(const Token& token, BootClock::time_point now) const {
    switch (settings_.format) {
    case SinkFormat::raw:
        return token.access_token;
    case SinkFormat::header:
        return "Bearer " + token.access_token;
    case SinkFormat::json:
        break;
    }
    json::object body{
        {"access_token", token.access_token},
        {"token_type", "Bearer"},
        {"expires_in", std::max<std::int64_t>(0, whole_seconds(token.expires_at - now))},
        {"expiration", unix_time(token.expiration)},
        {"profile", profile_},
    };
    return json::serialize(body) + "\n";
}

void FileSink::on_event(const TokenSource& source, SourceEvent event) {
    auto token = source.latest();
    if (!token) {
        return;
    }
    if (event == SourceEvent::new_token) {
        write(*token);
        return;
    }
    if (event == SourceEvent::expired && written_ && written_->fingerprint == token->fingerprint) {
        spdlog::warn("[profile {}] sink {} holds token {}, which is no longer servable; "
                     "it is replaced as soon as a new token arrives",
                     profile_,
                     *settings_.path,
                     token->fingerprint);
    }
}

void FileSink::write(const Token& token) {
    auto problem =
        write_file_atomically(*settings_.path, content(token, BootClock::now()), settings_.mode);
    if (problem) {
        // The file keeps whatever it held; status says so.
        spdlog::warn("[profile {}] cannot write token {} to sink: {}",
                     profile_,
                     token.fingerprint,
                     *problem);
        last_error_ = std::move(problem);
        return;
    }

    ++writes_;
    last_error_.reset();
    stale_file_ = false;
    written_ = Written{token.fingerprint, token.expires_at, std::chrono::system_clock::now()};
    spdlog::debug("[profile {}] wrote token {} to sink {}",
                  profile_,
                  token.fingerprint,
                  *settings_.path);
}

json::value FileSink::status() const {
    auto now = BootClock::now();
    json::object out{
        {"path", *settings_.path},
        {"format", to_string(settings_.format)},
        {"writes", writes_},
        {"last_error", last_error_ ? json::value(*last_error_) : json::value(nullptr)},
    };

    std::string_view state = "empty";
    if (written_) {
        bool expired = written_->expires_at - now <=
                       std::chrono::duration_cast<BootClock::duration>(min_valid_);
        state = expired ? "expired" : last_error_ ? "failed" : "current";
        out["token_fingerprint"] = written_->fingerprint;
        out["expires_in"] = whole_seconds(written_->expires_at - now);
        out["written_at"] = unix_time(written_->at);
    } else {
        state = stale_file_ ? "stale" : last_error_ ? "failed" : "empty";
        out["token_fingerprint"] = nullptr;
        out["expires_in"] = nullptr;
        out["written_at"] = nullptr;
    }
    out["state"] = state;
    return out;
}

} // namespace iam_tokend
