#include "rendered_reply.hpp"

#include <boost/beast/http/status.hpp>

namespace iam_tokend {
namespace http = boost::beast::http;

namespace {

constexpr unsigned http_1_0 = 10;

void append_field(std::string& head, std::string_view name, std::string_view value) {
    head.append(name).append(": ").append(value).append("\r\n");
}

} // namespace

RenderedReply render(LocalReply reply) {
    RenderedReply rendered;
    rendered.status = reply.status;
    rendered.body = std::move(reply.body);

    std::string& head = rendered.head;
    head.append("HTTP/1.1 ").append(std::to_string(reply.status)).append(" ");
    head.append(http::obsolete_reason(http::int_to_status(reply.status))).append("\r\n");
    append_field(head, "Server", "iam-tokend");
    append_field(head, "Content-Type", reply.content_type);
    for (const auto& [name, value] : reply.headers) {
        append_field(head, name, value);
    }
    append_field(head, "Content-Length", std::to_string(rendered.body.size()));
    return rendered;
}

std::string_view end_of_head(unsigned request_version, bool keep_alive) {
    if (!keep_alive) {
        return "Connection: close\r\n\r\n";
    }
    if (request_version == http_1_0) {
        return "Connection: keep-alive\r\n\r\n";
    }
    return "\r\n";
}

} // namespace iam_tokend
