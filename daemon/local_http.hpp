// HTTP/1.1 framing for the local API, apart from any socket.
//
// A RequestReader is handed the bytes a client sent, as they arrive, and
// says when they make up one whole request, or why they never will. Bytes it
// does not use belong to the next request (pipelining), and a fresh reader
// takes them. to_response() turns the router's reply into the HTTP response
// written back. local_server moves the bytes between these and the socket;
// the fuzz target in tests/fuzz feeds them in directly.
//
// What is accepted: any Host header or none (access is decided by the
// socket's mode and the peer's credentials, not by a name), a target in
// origin form (`/v1/token?format=raw`) or absolute form
// (`http://localhost/v1/token`), and a small body, which is read and
// ignored. Anything Beast cannot parse is answered 400, a header over
// max_request_header 431, a body over max_request_body 413; the connection
// is closed after those replies.
#pragma once

#include "routes.hpp"

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <string_view>

namespace iam_tokend {

// The request line and the header fields together.
inline constexpr std::size_t max_request_header = 8 * 1024;
// No request of the local API needs a body; a small one is tolerated.
inline constexpr std::size_t max_request_body = 4 * 1024;

using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;

class RequestReader {
public:
    enum class State {
        reading,   // the request is not complete yet
        complete,  // request(), version() and keep_alive() are ready
        malformed, // refusal() is the reply; the connection must close
    };

    RequestReader();

    // Parses from the front of `input` and returns how many bytes it used.
    // While reading, the bytes not used must be passed again next time,
    // followed by whatever arrived since.
    std::size_t feed(std::string_view input);

    State state() const { return state_; }

    // Only when complete.
    LocalRequest request() const;
    unsigned version() const;
    bool keep_alive() const;

    // Only when malformed: 400, 413 or 431 with a JSON error body.
    LocalReply refusal() const;

private:
    std::size_t put(std::string_view input, boost::system::error_code& ec);

    boost::beast::http::request_parser<boost::beast::http::string_body> parser_;
    boost::system::error_code error_;
    State state_ = State::reading;
    bool started_ = false;         // past any empty lines before the request
    std::size_t header_bytes_ = 0; // of the header, consumed so far
};

// The HTTP/1.1 response for a reply (an HTTP/1.0 one for a 1.0 request).
HttpResponse to_response(LocalReply reply, unsigned request_version, bool keep_alive);

} // namespace iam_tokend
