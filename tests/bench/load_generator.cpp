// A load generator for HTTP/1.1 servers on a Unix socket.
//
// It keeps `--connections` requests in flight, one per connection, for a
// fixed time, either reusing each connection (keep-alive) or opening a new
// one for every request (`--new-connection`). At the end it prints one line
// of `key=value` pairs that scripts/bench reads:
//
//   requests=N rps=R p50_us=A p99_us=B p999_us=C errors=E
//
// Latency runs from just before a request is written (or, with a new
// connection per request, just before the connect) to the moment the whole
// reply has been read. Any reply other than 200, a malformed reply, and a
// connection that fails or closes early count as errors.
//
// `--idle N` opens N connections instead, makes one request on each and then
// holds them open without a word until `--duration` is over: the state a
// server is in with many quiet clients. It prints `idle_ready=N` once all N
// are open, and the usual line at the end.
//
// `--first-reply` waits (up to `--duration`) for the socket to accept, makes
// one request and prints `first_reply_at=<Unix time> status=200|error`: with
// the generator started just before the server, the server's time to its
// first answer.
//
// One io_context on one thread drives every connection, each a coroutine.
// The generator must cost less than the servers it measures, so a reply is
// read into a fixed buffer and only its status line and Content-Length are
// looked at; nothing is allocated per request.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {
namespace asio = boost::asio;
using asio::as_tuple;
using asio::use_awaitable;
using Protocol = asio::local::stream_protocol;
using Clock = std::chrono::steady_clock;

// The largest reply the generator accepts, headers and body together.
constexpr std::size_t max_reply_bytes = 16 * 1024;
// Latencies are kept one by one; this many are reserved up front so the
// vector does not grow while measuring.
constexpr std::size_t reserved_samples = 4'000'000;
// After a failed connect, a connection waits this long before trying again,
// so a server that is down does not turn the generator into a busy loop.
constexpr std::chrono::milliseconds reconnect_pause{10};
// How often --first-reply tries to connect while the server is starting.
constexpr std::chrono::microseconds first_reply_poll{500};
// How long past the end a run waits for replies still outstanding.
constexpr std::chrono::seconds stuck_reply_grace{5};

struct Options {
    std::string socket;
    std::string target = "/v1/token";
    std::size_t connections = 16;
    bool new_connection = false;
    double duration_s = 3.0;
    double warmup_s = 0.5;
    std::uint64_t max_requests = 0; // 0: no limit, only the duration
    std::size_t idle = 0;
    bool first_reply = false;
};

const char* const usage =
    "usage: load_generator --socket PATH [--target /v1/token] [--connections N]\n"
    "                      [--new-connection] [--duration S] [--warmup S]\n"
    "                      [--requests N] [--idle N] [--first-reply]\n";

[[noreturn]] void fail_usage(const std::string& message) {
    std::cerr << "load_generator: " << message << "\n" << usage;
    std::exit(2);
}

template <typename Number>
Number parse_number(std::string_view flag, std::string_view text) {
    Number value{};
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || value < 0) {
        fail_usage(std::string(flag) + " wants a non-negative number, not " + std::string(text));
    }
    return value;
}

Options parse_options(int argc, char** argv) {
    Options options;
    std::vector<std::string_view> args(argv + 1, argv + argc);
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string_view flag = args[i];
        if (flag == "--new-connection") {
            options.new_connection = true;
            continue;
        }
        if (flag == "--first-reply") {
            options.first_reply = true;
            continue;
        }
        if (i + 1 == args.size()) {
            fail_usage("missing value after " + std::string(flag));
        }
        std::string_view value = args[++i];
        if (flag == "--socket") {
            options.socket = value;
        } else if (flag == "--target") {
            options.target = value;
        } else if (flag == "--connections") {
            options.connections = parse_number<std::size_t>(flag, value);
        } else if (flag == "--duration") {
            options.duration_s = parse_number<double>(flag, value);
        } else if (flag == "--warmup") {
            options.warmup_s = parse_number<double>(flag, value);
        } else if (flag == "--requests") {
            options.max_requests = parse_number<std::uint64_t>(flag, value);
        } else if (flag == "--idle") {
            options.idle = parse_number<std::size_t>(flag, value);
        } else {
            fail_usage("unknown option " + std::string(flag));
        }
    }
    if (options.socket.empty()) {
        fail_usage("--socket is required");
    }
    if (options.connections == 0) {
        fail_usage("--connections must be at least 1");
    }
    return options;
}

Clock::duration seconds(double value) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(value));
}

bool equal_ignoring_case(std::string_view a, std::string_view b) {
    return std::ranges::equal(a, b, [](char x, char y) {
        return std::tolower(static_cast<unsigned char>(x)) ==
               std::tolower(static_cast<unsigned char>(y));
    });
}

// What is known about a reply once its header block is complete.
struct ReplyHead {
    unsigned status = 0;
    std::size_t header_bytes = 0; // up to and including the empty line
    std::size_t content_length = 0;
};

// Reads the status and Content-Length out of `data` once it holds a whole
// header block; nullopt while it does not. Throws on a malformed head.
std::optional<ReplyHead> parse_head(std::string_view data) {
    auto end = data.find("\r\n\r\n");
    if (end == std::string_view::npos) {
        return std::nullopt;
    }
    ReplyHead head;
    head.header_bytes = end + 4;
    std::string_view lines = data.substr(0, end);

    // "HTTP/1.1 200 OK"
    if (!lines.starts_with("HTTP/1.") || lines.size() < 12) {
        throw std::runtime_error("not an HTTP reply");
    }
    std::from_chars(lines.data() + 9, lines.data() + 12, head.status);

    constexpr std::string_view length_name = "content-length:";
    std::size_t at = lines.find("\r\n");
    while (at != std::string_view::npos) {
        std::size_t start = at + 2;
        at = lines.find("\r\n", start);
        std::string_view line = lines.substr(start, at == std::string_view::npos ? at : at - start);
        if (line.size() <= length_name.size() ||
            !equal_ignoring_case(line.substr(0, length_name.size()), length_name)) {
            continue;
        }
        std::string_view value = line.substr(length_name.size());
        while (!value.empty() && value.front() == ' ') {
            value.remove_prefix(1);
        }
        std::from_chars(value.data(), value.data() + value.size(), head.content_length);
    }
    return head;
}

class LoadGenerator {
public:
    explicit LoadGenerator(Options options)
        : options_(std::move(options)),
          endpoint_(options_.socket),
          request_(make_request()) {
        latencies_.reserve(reserved_samples);
    }

    // Runs the whole measurement and prints its one line.
    void run() {
        auto now = Clock::now();
        measure_from_ = now + seconds(options_.warmup_s);
        end_ = measure_from_ + seconds(options_.duration_s);
        if (options_.first_reply) {
            spawn_workers(1, &LoadGenerator::first_reply);
        } else if (options_.idle > 0) {
            spawn_workers(options_.idle, &LoadGenerator::hold_idle);
        } else {
            spawn_workers(options_.connections, &LoadGenerator::drive_connection);
        }
        asio::co_spawn(io_, watch(), rethrow);
        io_.run();
        if (!options_.first_reply) {
            report();
        }
    }

private:
    using Buffer = std::array<char, max_reply_bytes>;

    void spawn_workers(std::size_t count, asio::awaitable<void> (LoadGenerator::*worker)()) {
        active_ = count;
        for (std::size_t i = 0; i < count; ++i) {
            asio::co_spawn(io_, (this->*worker)(), rethrow);
        }
    }

    static void rethrow(const std::exception_ptr& error) {
        if (error) {
            std::rethrow_exception(error);
        }
    }

    std::string make_request() const {
        return "GET " + options_.target + " HTTP/1.1\r\nHost: localhost\r\n" +
               (options_.new_connection ? "Connection: close\r\n" : "") + "\r\n";
    }

    bool finished(Clock::time_point now) const {
        return now >= end_ || (options_.max_requests > 0 && completed_ >= options_.max_requests);
    }

    void record(Clock::time_point started, Clock::time_point now, bool ok) {
        ++completed_;
        last_done_ = now;
        if (now < measure_from_ || now >= end_) {
            return;
        }
        if (!ok) {
            ++errors_;
            return;
        }
        latencies_.push_back(static_cast<std::uint32_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(now - started).count()));
    }

    // One request on an open connection: true when a 200 reply came back
    // and the connection can carry the next request.
    asio::awaitable<bool> exchange(Protocol::socket& socket, Buffer& buffer) {
        auto [write_ec, written] =
            co_await asio::async_write(socket, asio::buffer(request_), as_tuple(use_awaitable));
        if (write_ec) {
            co_return false;
        }
        std::size_t filled = 0;
        std::optional<ReplyHead> head;
        while (!head || filled < head->header_bytes + head->content_length) {
            if (filled == buffer.size()) {
                throw std::runtime_error("a reply larger than the generator's buffer");
            }
            auto [read_ec, got] = co_await socket.async_read_some(
                asio::buffer(buffer.data() + filled, buffer.size() - filled),
                as_tuple(use_awaitable));
            if (read_ec) {
                co_return false;
            }
            filled += got;
            if (!head) {
                head = parse_head(std::string_view(buffer.data(), filled));
            }
        }
        co_return head->status == 200;
    }

    asio::awaitable<bool> connect(Protocol::socket& socket,
                                  Clock::duration pause_on_failure = reconnect_pause) {
        auto [ec] = co_await socket.async_connect(endpoint_, as_tuple(use_awaitable));
        if (!ec) {
            co_return true;
        }
        asio::steady_timer pause(io_, pause_on_failure);
        co_await pause.async_wait(as_tuple(use_awaitable));
        co_return false;
    }

    asio::awaitable<void> drive_connection() {
        Buffer buffer;
        while (!finished(Clock::now())) {
            Protocol::socket socket(io_);
            auto started = Clock::now();
            if (!co_await connect(socket)) {
                record(started, Clock::now(), false);
                continue;
            }
            // With keep-alive the same connection serves request after
            // request until one fails or the time is up.
            bool ok = true;
            while (ok) {
                ok = co_await exchange(socket, buffer);
                auto now = Clock::now();
                record(started, now, ok);
                if (options_.new_connection || finished(now)) {
                    break;
                }
                started = now;
            }
        }
        worker_done();
    }

    asio::awaitable<void> hold_idle() {
        Buffer buffer;
        Protocol::socket socket(io_);
        bool ok = co_await connect(socket) && co_await exchange(socket, buffer);
        if (ok) {
            // Tell whoever watches once every connection is open and quiet.
            if (++completed_ == options_.idle) {
                std::printf("idle_ready=%zu\n", options_.idle);
                std::fflush(stdout);
            }
            asio::steady_timer until_end(io_, end_);
            co_await until_end.async_wait(as_tuple(use_awaitable));
        } else {
            ++errors_;
        }
        worker_done();
    }

    // Polls until the server accepts a connection, then makes one request
    // and reports when its reply arrived, by the wall clock.
    asio::awaitable<void> first_reply() {
        Buffer buffer;
        while (!finished(Clock::now())) {
            Protocol::socket socket(io_);
            if (!co_await connect(socket, first_reply_poll)) {
                continue;
            }
            bool ok = co_await exchange(socket, buffer);
            auto at = std::chrono::system_clock::now().time_since_epoch();
            std::printf("first_reply_at=%.6f status=%s\n",
                        std::chrono::duration<double>(at).count(),
                        ok ? "200" : "error");
            break;
        }
        worker_done();
    }

    void worker_done() {
        if (--active_ == 0) {
            watchdog_.cancel();
        }
    }

    // Ends the run when a server stops answering: in-flight requests get
    // `stuck_reply_grace` past the end, then everything is dropped.
    asio::awaitable<void> watch() {
        watchdog_.expires_at(end_ + stuck_reply_grace);
        auto [ec] = co_await watchdog_.async_wait(as_tuple(use_awaitable));
        if (!ec) {
            std::fprintf(stderr,
                         "load_generator: %zu connection(s) still waiting; giving up\n",
                         active_);
            errors_ += active_;
            io_.stop();
        }
    }

    double percentile_us(double fraction) {
        if (latencies_.empty()) {
            return 0;
        }
        auto count = static_cast<double>(latencies_.size());
        auto rank = static_cast<std::size_t>(std::ceil(fraction * count)) - 1;
        rank = std::min(rank, latencies_.size() - 1);
        std::nth_element(latencies_.begin(), latencies_.begin() + rank, latencies_.end());
        return latencies_[rank] / 1000.0;
    }

    void report() {
        double window_s = options_.duration_s;
        if (options_.max_requests > 0) {
            // Stopped by the count: the window is as long as it took.
            window_s = std::chrono::duration<double>(last_done_ - measure_from_).count();
        }
        double rps = window_s > 0 ? static_cast<double>(latencies_.size()) / window_s : 0;
        std::printf("requests=%zu rps=%.0f p50_us=%.1f p99_us=%.1f p999_us=%.1f errors=%llu\n",
                    latencies_.size(),
                    rps,
                    percentile_us(0.50),
                    percentile_us(0.99),
                    percentile_us(0.999),
                    static_cast<unsigned long long>(errors_));
    }

    Options options_;
    asio::io_context io_{1};
    Protocol::endpoint endpoint_;
    std::string request_;
    Clock::time_point measure_from_;
    Clock::time_point end_;
    Clock::time_point last_done_;
    std::uint64_t completed_ = 0;
    std::uint64_t errors_ = 0;
    std::size_t active_ = 0;
    asio::steady_timer watchdog_{io_};
    std::vector<std::uint32_t> latencies_;
};

} // namespace

int main(int argc, char** argv) {
    try {
        LoadGenerator(parse_options(argc, argv)).run();
    } catch (const std::exception& e) {
        std::cerr << "load_generator: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
