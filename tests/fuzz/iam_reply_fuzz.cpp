// Fuzzes the reading of IAM's replies to the token endpoint.
//
// The input is a first line `STATUS CONTENT-TYPE [RETRY-AFTER]`, then the
// body; an input without a line break is a body sent with 200 and
// application/json. The parser must never crash or throw; a token it
// accepts must be complete and have a life within the documented bounds,
// and what it would log must stay short.
#include "iam_response.hpp"

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace {

using namespace iam_tokend;

// The first space-separated word of `line`, which is then cut after it.
std::string_view next_word(std::string_view& line) {
    auto end = line.find(' ');
    std::string_view word = line.substr(0, end);
    line = end == std::string_view::npos ? std::string_view() : line.substr(end + 1);
    return word;
}

HttpReply reply_from(std::string_view input) {
    HttpReply reply;
    reply.status = 200;
    reply.content_type = "application/json";
    auto newline = input.find('\n');
    if (newline == std::string_view::npos) {
        reply.body = input;
        return reply;
    }

    std::string_view line = input.substr(0, newline);
    std::string_view status = next_word(line);
    std::from_chars(status.data(), status.data() + status.size(), reply.status);
    reply.content_type = next_word(line);
    if (!line.empty()) {
        reply.retry_after = std::string(line);
    }
    reply.body = input.substr(newline + 1);
    return reply;
}

void check_failure(const Failure& failure) {
    if (failure.message.empty() || failure.message.size() > 4096) {
        std::abort();
    }
    if (failure.error_code && failure.error_code->size() > error_field_length + 8) {
        std::abort();
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);
    HttpReply reply = reply_from(input);

    auto parsed = parse_token_reply(reply);
    if (parsed) {
        if (parsed->access_token.empty() || parsed->expires_in < min_expires_in ||
            parsed->expires_in > max_expires_in) {
            std::abort();
        }
    } else {
        check_failure(parsed.error());
    }

    if (reply.retry_after) {
        auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));
        auto delay = parse_retry_after(*reply.retry_after, now);
        if (delay && delay->count() < 0) {
            std::abort();
        }
    }
    if (body_excerpt(reply.body).size() > 4 * body_excerpt_length) {
        std::abort();
    }
    return 0;
}
