// Reading a request of the local API without keeping more of it than the
// routes use.
//
// Beast's request_parser stores every header field, each in its own heap
// block, for every request. The local API looks only at the request line
// and at whether the connection stays open, so this parser keeps just
// those, in a RequestHead that the connection owns and reuses: once its
// strings have grown to fit, parsing a request allocates nothing. Beast
// still checks the whole message: the syntax, the header and body limits,
// the Connection field, and chunked framing. A body is read and dropped.
#pragma once

#include <boost/beast/http/basic_parser.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

namespace iam_tokend {

struct RequestHead {
    std::string method;
    std::string target;
    unsigned version = 11; // 10 for HTTP/1.0, 11 for HTTP/1.1
};

// One parser per request (Beast's parsers cannot be reused); `head` is
// filled in as soon as the request line has been read.
class RequestHeadParser final : public boost::beast::http::basic_parser<true> {
public:
    explicit RequestHeadParser(RequestHead& head) : head_(head) {}

private:
    using string_view = boost::beast::string_view;
    using error_code = boost::beast::error_code;
    using verb = boost::beast::http::verb;
    using field = boost::beast::http::field;

    void on_request_impl(verb /*method*/,
                         string_view method,
                         string_view target,
                         int version,
                         error_code& /*ec*/) override {
        head_.method.assign(method.data(), method.size());
        head_.target.assign(target.data(), target.size());
        head_.version = static_cast<unsigned>(version);
    }

    // What follows is part of a message the routes do not look at.
    void on_response_impl(int /*code*/,
                          string_view /*reason*/,
                          int /*version*/,
                          error_code& /*ec*/) override {}
    void on_field_impl(field /*name*/,
                       string_view /*name_string*/,
                       string_view /*value*/,
                       error_code& /*ec*/) override {}
    void on_header_impl(error_code& /*ec*/) override {}
    void on_body_init_impl(const boost::optional<std::uint64_t>& /*content_length*/,
                           error_code& /*ec*/) override {}
    std::size_t on_body_impl(string_view body, error_code& /*ec*/) override { return body.size(); }
    void on_chunk_header_impl(std::uint64_t /*size*/,
                              string_view /*extensions*/,
                              error_code& /*ec*/) override {}
    std::size_t
    on_chunk_body_impl(std::uint64_t /*remain*/, string_view body, error_code& /*ec*/) override {
        return body.size();
    }
    void on_finish_impl(error_code& /*ec*/) override {}

    RequestHead& head_;
};

} // namespace iam_tokend
