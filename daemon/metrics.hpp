// Prometheus metrics, served as text at GET /metrics.
//
// Counters are kept here as events happen: each exchange with IAM (through a
// TokenSource listener), each local reply and each connection (reported by
// the local server). Gauges that describe a profile right now (seconds until
// its token expires, its state, its run of failures) are not stored at all:
// they are read from the token sources when the page is rendered, so they
// can never be stale.
//
// Every name starts with `iam_tokend_` and every family has HELP and TYPE
// lines. Label values are bounded: profile names come from the config and
// routes are mapped to a fixed set, so no client can grow the page.
//
// Like the rest of the daemon this runs on the one io_context thread, so
// nothing is locked.
#pragma once

#include "routes.hpp"
#include "token_source.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>

namespace iam_tokend {

// Upper bounds (seconds) of the IAM request duration histogram's buckets.
inline constexpr std::array iam_duration_buckets{0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0};

inline constexpr std::string_view metrics_content_type = "text/plain; version=0.0.4; charset=utf-8";

// The route label of a local request: the API's resources, with the profile
// name left out so that the label set stays small.
enum class Route {
    token,           // /v1/token
    token_profile,   // /v1/token/{profile}
    refresh,         // /v1/refresh
    refresh_profile, // /v1/refresh/{profile}
    health,          // /v1/health
    status,          // /v1/status
    metrics,         // /metrics
    other,           // any other path
    unparsed,        // a request that could not be read as HTTP
};
inline constexpr std::size_t route_count = 9;

Route route_of(std::string_view target);
std::string_view to_string(Route route);

// A cumulative histogram with iam_duration_buckets.
class DurationHistogram {
public:
    void observe(double seconds);
    // Appends the bucket, sum and count lines of `name` with `labels`
    // (already formatted, e.g. `profile="a"`).
    void render(std::string& out, std::string_view name, std::string_view labels) const;

private:
    std::array<std::uint64_t, iam_duration_buckets.size()> buckets_{};
    std::uint64_t count_ = 0;
    double sum_ = 0;
};

class Metrics {
public:
    // Counts the outcome and the duration of each of `source`'s exchanges
    // with IAM from now on. A token restored from the state file is not an
    // exchange and is not counted.
    void watch(TokenSource& source);

    void count_request(Route route, unsigned status);
    void connection_opened() { ++open_connections_; }
    void connection_closed() { --open_connections_; }

    // The exposition page; the gauges are read from `profiles` now.
    std::string render(const Profiles& profiles) const;

private:
    struct ProfileCounters {
        // (grant, ok) -> finished exchanges
        std::map<std::pair<AttemptGrant, bool>, std::uint64_t> exchanges;
        DurationHistogram duration;
    };

    void on_event(const TokenSource& source, SourceEvent event);
    void render_exchanges(std::string& out) const;
    void render_requests(std::string& out) const;

    std::map<std::string, ProfileCounters> profiles_;
    std::array<std::map<unsigned, std::uint64_t>, route_count> requests_{};
    std::int64_t open_connections_ = 0;
};

// Counts a connection as open for as long as it lives; `metrics` may be null.
class OpenConnection {
public:
    explicit OpenConnection(Metrics* metrics) : metrics_(metrics) {
        if (metrics_ != nullptr) {
            metrics_->connection_opened();
        }
    }
    ~OpenConnection() {
        if (metrics_ != nullptr) {
            metrics_->connection_closed();
        }
    }
    OpenConnection(const OpenConnection&) = delete;
    OpenConnection& operator=(const OpenConnection&) = delete;

private:
    Metrics* metrics_;
};

} // namespace iam_tokend
