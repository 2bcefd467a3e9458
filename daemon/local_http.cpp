#include "local_http.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/url/parse.hpp>

namespace iam_tokend {
namespace http = boost::beast::http;

namespace {

constexpr unsigned http_1_0 = 10;
constexpr unsigned http_1_1 = 11;

// The path and query of a target in absolute form, as if sent in origin form.
std::string origin_form(std::string_view target) {
    if (target.starts_with('/')) {
        return std::string(target);
    }
    auto absolute = boost::urls::parse_absolute_uri(target);
    if (!absolute) {
        return std::string(target); // the router answers it 400
    }
    std::string_view path_and_query = absolute->encoded_target();
    return path_and_query.empty() ? "/" : std::string(path_and_query);
}

} // namespace

RequestReader::RequestReader() {
    parser_.header_limit(max_request_header);
    parser_.body_limit(max_request_body);
    // Stop at the end of the header, so that its size is known exactly.
    parser_.eager(false);
}

std::size_t RequestReader::feed(std::string_view input) {
    if (state_ != State::reading) {
        return 0;
    }

    // Empty lines before a request line are ignored (RFC 9112 §2.2); some
    // clients send one after a body.
    std::size_t used = 0;
    if (!started_) {
        while (used < input.size() && (input[used] == '\r' || input[used] == '\n')) {
            ++used;
        }
        input.remove_prefix(used);
        if (input.empty()) {
            return used;
        }
        started_ = true;
    }

    boost::system::error_code ec;
    if (!parser_.is_header_done()) {
        std::size_t header = put(input, ec);
        used += header;
        header_bytes_ += header;
        input.remove_prefix(header);

        // Beast applies its header limit to each call, and keeps the fields
        // of earlier calls: the sum over the calls is bounded here.
        std::size_t at_least = header_bytes_ + (parser_.is_header_done() ? 0 : input.size());
        if (at_least > max_request_header) {
            error_ = http::error::header_limit;
            state_ = State::malformed;
            return used;
        }
    }
    if (!ec && parser_.is_header_done() && !parser_.is_done() && !input.empty()) {
        parser_.eager(true);
        used += put(input, ec);
    }

    if (ec && ec != http::error::need_more) {
        error_ = ec;
        state_ = State::malformed;
    } else if (parser_.is_done()) {
        state_ = State::complete;
    }
    return used;
}

std::size_t RequestReader::put(std::string_view input, boost::system::error_code& ec) {
    if (input.empty()) {
        ec = http::error::need_more;
        return 0;
    }
    return parser_.put(boost::asio::buffer(input.data(), input.size()), ec);
}

LocalRequest RequestReader::request() const {
    const auto& message = parser_.get();
    return {std::string(message.method_string()), origin_form(message.target())};
}

unsigned RequestReader::version() const {
    return parser_.get().version();
}

bool RequestReader::keep_alive() const {
    return parser_.get().keep_alive();
}

LocalReply RequestReader::refusal() const {
    if (error_ == http::error::header_limit) {
        return Router::error(431, "headers_too_large", "request line and headers are too large");
    }
    if (error_ == http::error::body_limit) {
        return Router::error(413, "body_too_large", "request body is too large");
    }
    return Router::error(400, "bad_request", "malformed HTTP request: " + error_.message());
}

HttpResponse to_response(LocalReply reply, unsigned request_version, bool keep_alive) {
    unsigned version = request_version == http_1_0 ? http_1_0 : http_1_1;
    HttpResponse response{static_cast<http::status>(reply.status), version};
    response.set(http::field::server, "iam-tokend");
    response.set(http::field::content_type, reply.content_type);
    for (auto& [name, value] : reply.headers) {
        response.set(name, value);
    }
    response.body() = std::move(reply.body);
    response.keep_alive(keep_alive);
    response.prepare_payload();
    return response;
}

} // namespace iam_tokend
