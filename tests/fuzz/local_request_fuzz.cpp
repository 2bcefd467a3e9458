// Fuzzes the local API from the bytes a client sends to the bytes it gets
// back, with no socket: the HTTP framing of local_http and the routes, over
// two profiles that have no token (one of them closed to every caller).
//
// The first byte of the input is how many bytes arrive per read (as a
// socket would hand them over, 1 to 256); the rest is what the client
// sent. Requests are answered in order, as a connection does, until the
// bytes run out, a request is malformed, or a reply closes the connection.
// Every reply must read back as a well-formed HTTP response.
#include "local_http.hpp"
#include "routes.hpp"
#include "token_source.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <string_view>

namespace {

using namespace iam_tokend;
namespace asio = boost::asio;
namespace http = boost::beast::http;

std::shared_ptr<TokenSource> stopped_source(asio::io_context& io, std::string name) {
    Profile profile;
    profile.name = std::move(name);
    profile.iam_url = "https://iam.invalid/identity/token";
    if (profile.name == "locked") {
        profile.allow.uids = {4242};
    }
    auto source = std::make_shared<TokenSource>(io.get_executor(), profile, "fuzz-key");
    source->stop(); // never asks IAM; a client wanting a token gets 503 at once
    return source;
}

struct Fixture {
    asio::io_context io;
    Profiles profiles;
    Router router{profiles};

    Fixture() {
        profiles.default_name = "default";
        profiles.sources["default"] = stopped_source(io, "default");
        profiles.sources["locked"] = stopped_source(io, "locked");
    }

    LocalReply answer(LocalRequest request) {
        LocalReply answered;
        asio::co_spawn(io,
                       router.handle(std::move(request), Peer{}),
                       [&answered](const std::exception_ptr& error, LocalReply reply) {
                           if (error) {
                               std::abort(); // the server would answer 500
                           }
                           answered = std::move(reply);
                       });
        io.restart();
        io.run();
        return answered;
    }
};

// The reply as a client would read it: one complete, well-formed response.
void check_reply(const std::string& bytes, unsigned expected_status) {
    http::response_parser<http::string_body> parser;
    parser.eager(true);
    boost::system::error_code ec;
    std::size_t used = parser.put(asio::buffer(bytes), ec);
    if (ec || !parser.is_done() || used != bytes.size()) {
        std::abort();
    }
    if (parser.get().result_int() != expected_status) {
        std::abort();
    }
}

// The client's bytes as a socket delivers them, `chunk` at a time, with
// what a reader left unused kept in front of the rest: as in the server.
class Delivery {
public:
    Delivery(std::string_view sent, std::size_t chunk) : sent_(sent), chunk_(chunk) {}

    bool exhausted() const { return buffered_.empty() && sent_.empty(); }

    // Feeds the reader until it is done or the bytes run out.
    void feed(RequestReader& reader) {
        for (;;) {
            if (!buffered_.empty()) {
                buffered_.erase(0, reader.feed(buffered_));
                if (reader.state() != RequestReader::State::reading) {
                    return;
                }
            }
            if (sent_.empty()) {
                return;
            }
            std::size_t take = std::min(chunk_, sent_.size());
            buffered_.append(sent_.substr(0, take));
            sent_.remove_prefix(take);
        }
    }

private:
    std::string_view sent_;
    std::string buffered_;
    std::size_t chunk_;
};

// Answers the next request; false when the connection would end after it
// (or wait for bytes that never come).
bool answer_next(Fixture& fixture, Delivery& delivery) {
    RequestReader reader;
    delivery.feed(reader);
    if (reader.state() == RequestReader::State::reading) {
        return false;
    }
    if (reader.state() == RequestReader::State::malformed) {
        LocalReply refusal = reader.refusal();
        unsigned status = refusal.status;
        if (status != 400 && status != 413 && status != 431) {
            std::abort();
        }
        check_reply(wire(render(std::move(refusal)), 11, false), status);
        return false;
    }

    LocalReply reply = fixture.answer(reader.request());
    unsigned status = reply.status;
    check_reply(wire(render(std::move(reply)), reader.version(), reader.keep_alive()), status);
    return reader.keep_alive();
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    spdlog::set_level(spdlog::level::off);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static Fixture fixture;
    if (size == 0) {
        return 0;
    }
    std::size_t chunk = std::size_t{data[0]} + 1;
    Delivery delivery({reinterpret_cast<const char*>(data) + 1, size - 1}, chunk);
    while (!delivery.exhausted() && answer_next(fixture, delivery)) {
    }
    return 0;
}
