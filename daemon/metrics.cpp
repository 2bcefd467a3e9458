#include "metrics.hpp"

#include <spdlog/fmt/fmt.h>

#include <chrono>
#include <iterator>

namespace iam_tokend {

namespace {

constexpr std::array all_states{SourceState::starting,
                                SourceState::valid,
                                SourceState::refreshing,
                                SourceState::degraded,
                                SourceState::expired};
constexpr std::array all_grants{AttemptGrant::apikey, AttemptGrant::refresh_token};

// A label value with backslash, double quote and newline escaped.
std::string escaped(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        if (c == '\\' || c == '"') {
            out += '\\';
            out += c;
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
    fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

template <typename Value>
void sample(std::string& out, std::string_view name, std::string_view labels, Value value) {
    if (labels.empty()) {
        fmt::format_to(std::back_inserter(out), "{} {}\n", name, value);
        return;
    }
    fmt::format_to(std::back_inserter(out), "{}{{{}}} {}\n", name, labels, value);
}

std::string profile_label(std::string_view profile) {
    return fmt::format("profile=\"{}\"", escaped(profile));
}

// Whether `rest` is one non-empty path segment (a profile name).
bool one_segment(std::string_view rest) {
    return !rest.empty() && rest.find('/') == std::string_view::npos;
}

void render_token_gauges(std::string& out, const Profiles& profiles) {
    auto now = BootClock::now();
    family(out,
           "iam_tokend_token_expires_in_seconds",
           "gauge",
           "Seconds until the profile's latest token expires (negative once it has).");
    for (const auto& [name, source] : profiles.sources) {
        if (auto token = source->latest()) {
            std::chrono::duration<double> left = token->expires_at - now;
            sample(out, "iam_tokend_token_expires_in_seconds", profile_label(name), left.count());
        }
    }

    family(out,
           "iam_tokend_token_servable",
           "gauge",
           "1 when the profile has a token it may hand out, else 0.");
    for (const auto& [name, source] : profiles.sources) {
        int servable = source->current() ? 1 : 0;
        sample(out, "iam_tokend_token_servable", profile_label(name), servable);
    }
}

void render_profile_gauges(std::string& out, const Profiles& profiles) {
    family(out,
           "iam_tokend_profile_state",
           "gauge",
           "The profile's state as in /v1/status: 1 for the current state, 0 for the others.");
    for (const auto& [name, source] : profiles.sources) {
        SourceState current = source->state();
        for (SourceState state : all_states) {
            auto labels = fmt::format("{},state=\"{}\"", profile_label(name), to_string(state));
            sample(out, "iam_tokend_profile_state", labels, state == current ? 1 : 0);
        }
    }

    family(out,
           "iam_tokend_consecutive_failures",
           "gauge",
           "Failed exchanges with IAM since the profile's last successful one.");
    for (const auto& [name, source] : profiles.sources) {
        sample(out,
               "iam_tokend_consecutive_failures",
               profile_label(name),
               source->consecutive_failures());
    }
}

} // namespace

Route route_of(std::string_view target) {
    std::string_view path = target.substr(0, target.find('?'));
    constexpr std::string_view token_prefix = "/v1/token/";
    constexpr std::string_view refresh_prefix = "/v1/refresh/";

    if (path == "/v1/token") {
        return Route::token;
    }
    if (path.starts_with(token_prefix) && one_segment(path.substr(token_prefix.size()))) {
        return Route::token_profile;
    }
    if (path == "/v1/refresh") {
        return Route::refresh;
    }
    if (path.starts_with(refresh_prefix) && one_segment(path.substr(refresh_prefix.size()))) {
        return Route::refresh_profile;
    }
    if (path == "/v1/health") {
        return Route::health;
    }
    if (path == "/v1/status") {
        return Route::status;
    }
    if (path == "/metrics") {
        return Route::metrics;
    }
    return Route::other;
}

std::string_view to_string(Route route) {
    switch (route) {
    case Route::token:
        return "/v1/token";
    case Route::token_profile:
        return "/v1/token/{profile}";
    case Route::refresh:
        return "/v1/refresh";
    case Route::refresh_profile:
        return "/v1/refresh/{profile}";
    case Route::health:
        return "/v1/health";
    case Route::status:
        return "/v1/status";
    case Route::metrics:
        return "/metrics";
    case Route::other:
        return "other";
    case Route::unparsed:
        return "unparsed";
    }
    return "other";
}

void DurationHistogram::observe(double seconds) {
    for (std::size_t i = 0; i < iam_duration_buckets.size(); ++i) {
        if (seconds <= iam_duration_buckets[i]) {
            ++buckets_[i];
        }
    }
    ++count_;
    sum_ += seconds;
}

void DurationHistogram::render(std::string& out,
                               std::string_view name,
                               std::string_view labels) const {
    auto bucket = fmt::format("{}_bucket", name);
    for (std::size_t i = 0; i < iam_duration_buckets.size(); ++i) {
        auto le = fmt::format("{},le=\"{}\"", labels, iam_duration_buckets[i]);
        sample(out, bucket, le, buckets_[i]);
    }
    sample(out, bucket, fmt::format("{},le=\"+Inf\"", labels), count_);
    sample(out, fmt::format("{}_sum", name), labels, sum_);
    sample(out, fmt::format("{}_count", name), labels, count_);
}

void Metrics::watch(TokenSource& source) {
    auto& counters = profiles_[source.profile().name];
    for (AttemptGrant grant : all_grants) {
        counters.exchanges.try_emplace({grant, true}, 0);
        counters.exchanges.try_emplace({grant, false}, 0);
    }
    source.add_listener(
        [this](const TokenSource& changed, SourceEvent event) { on_event(changed, event); });
}

void Metrics::on_event(const TokenSource& source, SourceEvent event) {
    bool ok = event == SourceEvent::new_token;
    if (event == SourceEvent::expired) {
        return;
    }
    if (ok && source.latest() && source.latest()->restored) {
        return;
    }
    auto& counters = profiles_[source.profile().name];
    ++counters.exchanges[{source.last_grant(), ok}];
    std::chrono::duration<double> took = source.last_attempt_duration();
    counters.duration.observe(took.count());
}

void Metrics::count_request(Route route, unsigned status) {
    ++requests_[static_cast<std::size_t>(route)][status];
}

std::string Metrics::render(const Profiles& profiles) const {
    std::string out;
    family(out, "iam_tokend_build_info", "gauge", "Always 1; the version is in its label.");
    sample(out, "iam_tokend_build_info", fmt::format("version=\"{}\"", IAM_TOKEND_VERSION), 1);

    render_exchanges(out);
    render_token_gauges(out, profiles);
    render_profile_gauges(out, profiles);
    render_requests(out);

    family(out, "iam_tokend_open_connections", "gauge", "Local client connections open now.");
    sample(out, "iam_tokend_open_connections", "", open_connections_);
    return out;
}

void Metrics::render_exchanges(std::string& out) const {
    family(out,
           "iam_tokend_refreshes_total",
           "counter",
           "Token requests to IAM that finished, by profile, grant and result (ok or error).");
    for (const auto& [name, counters] : profiles_) {
        for (const auto& [key, count] : counters.exchanges) {
            auto labels = fmt::format(R"({},grant="{}",result="{}")",
                                      profile_label(name),
                                      to_string(key.first),
                                      key.second ? "ok" : "error");
            sample(out, "iam_tokend_refreshes_total", labels, count);
        }
    }

    family(out,
           "iam_tokend_iam_request_duration_seconds",
           "histogram",
           "Time from sending a token request to IAM to having its whole reply or failure.");
    for (const auto& [name, counters] : profiles_) {
        counters.duration.render(out,
                                 "iam_tokend_iam_request_duration_seconds",
                                 profile_label(name));
    }
}

void Metrics::render_requests(std::string& out) const {
    family(out,
           "iam_tokend_local_requests_total",
           "counter",
           "Replies to local clients, by route and HTTP status.");
    for (std::size_t route = 0; route < route_count; ++route) {
        for (const auto& [status, count] : requests_[route]) {
            auto labels = fmt::format(R"(route="{}",status="{}")",
                                      to_string(static_cast<Route>(route)),
                                      status);
            sample(out, "iam_tokend_local_requests_total", labels, count);
        }
    }
}

} // namespace iam_tokend
