// HTTP/1.1 framing for the local API, apart from any socket.
//
// A RequestReader is handed the bytes a client sent, as they arrive, and
// says when they make up one whole request, or why they never will. Bytes it
// does not use belong to the next request (pipelining), and the reader,
// reset, takes them. render() turns the router's reply into the bytes of the
// HTTP response, and wire_buffers() frames them for one request. local_server
// moves the bytes between these and the socket; the fuzz target in
// tests/fuzz feeds them in directly.
//
// Both sides are built to cost nothing per request once a connection is
// warm: the reader keeps only the request line (request_head.hpp), in
// strings it reuses, and a rendered reply can be sent any number of times,
// to any client, as it is (the router keeps its token replies rendered).
//
// What is accepted: any Host header or none (access is decided by the
// socket's mode and the peer's credentials, not by a name), a target in
// origin form (`/v1/token?format=raw`) or absolute form
// (`http://localhost/v1/token`), and a small body, which is read and
// ignored. Anything Beast cannot parse is answered 400, a header over
// max_request_header 431, a body over max_request_body 413; the connection
// is closed after those replies.
#pragma once

#include "request_head.hpp"
#include "routes.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/system/error_code.hpp>

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace iam_tokend {

// The request line and the header fields together.
inline constexpr std::size_t max_request_header = 8 * 1024;
// No request of the local API needs a body; a small one is tolerated.
inline constexpr std::size_t max_request_body = 4 * 1024;

class RequestReader {
public:
    enum class State {
        reading,   // the request is not complete yet
        complete,  // request(), version() and keep_alive() are ready
        malformed, // refusal() is the reply; the connection must close
    };

    RequestReader();
    RequestReader(const RequestReader&) = delete;
    RequestReader& operator=(const RequestReader&) = delete;

    // Ready for the next request, keeping the room its strings have grown.
    void reset();

    // Parses from the front of `input` and returns how many bytes it used.
    // While reading, the bytes not used must be passed again next time,
    // followed by whatever arrived since.
    std::size_t feed(std::string_view input);

    State state() const { return state_; }

    // Only when complete. method() and target() are as sent, and valid
    // until the next reset(); request() has the target in origin form.
    std::string_view method() const { return head_.method; }
    std::string_view target() const { return head_.target; }
    LocalRequest request() const;
    unsigned version() const;
    bool keep_alive() const;

    // Only when malformed: 400, 413 or 431 with a JSON error body.
    LocalReply refusal() const;

private:
    std::size_t put(std::string_view input, boost::system::error_code& ec);

    RequestHead head_;
    std::optional<RequestHeadParser> parser_; // one per request, filling head_
    boost::system::error_code error_;
    State state_ = State::reading;
    bool started_ = false;         // past any empty lines before the request
    std::size_t header_bytes_ = 0; // of the header, consumed so far
};

// A reply as the bytes that go on the wire, made once and sent as often as
// needed. The head is written for HTTP/1.1 and holds the status line and
// the header fields, each line ending in CRLF, without the empty line that
// ends the header block: what differs between requests (the version of the
// status line, the Connection field) is added by wire_buffers().
struct RenderedReply {
    unsigned status = 200;
    std::string head;
    std::string body;
};

// "HTTP/1.1 <status> <reason>", then Server, Content-Type, the reply's own
// header fields and Content-Length.
RenderedReply render(LocalReply reply);

// The whole response to a request of `request_version`, as buffers for one
// gathered write: an HTTP/1.0 status line for a 1.0 request, and the
// Connection field when the version's default is not what happens.
std::array<boost::asio::const_buffer, 4>
wire_buffers(const RenderedReply& reply, unsigned request_version, bool keep_alive);

// The same bytes in one string, for tests.
std::string wire(const RenderedReply& reply, unsigned request_version, bool keep_alive);

} // namespace iam_tokend
