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
// The same length: one replaces the other at the start of a rendered head.
constexpr std::string_view status_line_version_1_0 = "HTTP/1.0";
constexpr std::string_view status_line_version_1_1 = "HTTP/1.1";

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
    reset();
}

void RequestReader::reset() {
    parser_.emplace(head_);
    parser_->header_limit(max_request_header);
    parser_->body_limit(max_request_body);
    // Stop at the end of the header, so that its size is known exactly.
    parser_->eager(false);
    error_ = {};
    state_ = State::reading;
    started_ = false;
    header_bytes_ = 0;
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
    if (!parser_->is_header_done()) {
        std::size_t header = put(input, ec);
        used += header;
        header_bytes_ += header;
        input.remove_prefix(header);

        // Beast applies its header limit to each call, and keeps the fields
        // of earlier calls: the sum over the calls is bounded here.
        std::size_t at_least = header_bytes_ + (parser_->is_header_done() ? 0 : input.size());
        if (at_least > max_request_header) {
            error_ = http::error::header_limit;
            state_ = State::malformed;
            return used;
        }
    }
    if (!ec && parser_->is_header_done() && !parser_->is_done() && !input.empty()) {
        parser_->eager(true);
        used += put(input, ec);
    }

    if (ec && ec != http::error::need_more) {
        error_ = ec;
        state_ = State::malformed;
    } else if (parser_->is_done()) {
        state_ = State::complete;
    }
    return used;
}

std::size_t RequestReader::put(std::string_view input, boost::system::error_code& ec) {
    if (input.empty()) {
        ec = http::error::need_more;
        return 0;
    }
    return parser_->put(boost::asio::buffer(input.data(), input.size()), ec);
}

LocalRequest RequestReader::request() const {
    return {head_.method, origin_form(head_.target)};
}

unsigned RequestReader::version() const {
    return head_.version;
}

bool RequestReader::keep_alive() const {
    return parser_->keep_alive();
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

RenderedReply render(LocalReply reply) {
    RenderedReply rendered;
    rendered.status = reply.status;
    rendered.body = std::move(reply.body);

    std::string& head = rendered.head;
    auto field = [&head](std::string_view name, std::string_view value) {
        head.append(name).append(": ").append(value).append("\r\n");
    };
    head.append(status_line_version_1_1).append(" ").append(std::to_string(reply.status));
    head.append(" ").append(http::obsolete_reason(http::int_to_status(reply.status)));
    head.append("\r\n");
    field("Server", "iam-tokend");
    field("Content-Type", reply.content_type);
    for (const auto& [name, value] : reply.headers) {
        field(name, value);
    }
    field("Content-Length", std::to_string(rendered.body.size()));
    return rendered;
}

std::array<boost::asio::const_buffer, 4>
wire_buffers(const RenderedReply& reply, unsigned request_version, bool keep_alive) {
    bool old_client = request_version == http_1_0;
    std::string_view version = old_client ? status_line_version_1_0 : status_line_version_1_1;
    std::string_view rest_of_head = std::string_view(reply.head).substr(version.size());

    // HTTP/1.1 keeps a connection open unless told otherwise; HTTP/1.0
    // closes it unless told otherwise.
    std::string_view end_of_head = "\r\n";
    if (!keep_alive) {
        end_of_head = "Connection: close\r\n\r\n";
    } else if (old_client) {
        end_of_head = "Connection: keep-alive\r\n\r\n";
    }
    return {
        boost::asio::buffer(version),
        boost::asio::buffer(rest_of_head),
        boost::asio::buffer(end_of_head),
        boost::asio::buffer(reply.body),
    };
}

std::string wire(const RenderedReply& reply, unsigned request_version, bool keep_alive) {
    std::string out;
    for (const auto& part : wire_buffers(reply, request_version, keep_alive)) {
        out.append(static_cast<const char*>(part.data()), part.size());
    }
    return out;
}

} // namespace iam_tokend
