#include "https_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/url/parse.hpp>
#include <openssl/x509.h>
#include <spdlog/fmt/fmt.h>

#include <memory>

namespace iam_tokend {
namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace ssl = asio::ssl;
using asio::as_tuple;
using asio::use_awaitable;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

namespace {

enum class Phase { trust_store, resolve, connect, tunnel, handshake, send, headers, body };

std::string_view to_string(Phase phase) {
    switch (phase) {
    case Phase::trust_store:
        return "loading the trust store";
    case Phase::resolve:
        return "resolving the host";
    case Phase::connect:
        return "connecting";
    case Phase::tunnel:
        return "opening the tunnel through the proxy";
    case Phase::handshake:
        return "the TLS handshake";
    case Phase::send:
        return "sending the request";
    case Phase::headers:
        return "reading the reply headers";
    case Phase::body:
        return "reading the reply body";
    }
    return "unknown";
}

// What an exchange has got to, shared with the caller that may time it out.
struct Progress {
    Phase phase = Phase::trust_store;
    std::string peer;          // host:port, for messages
    std::string tls_detail;    // OpenSSL's reason when verification failed
    std::string proxy_problem; // an unusable proxy URL, or the proxy's refusal

    // What the reply's headers said, once they were read.
    int status = 0;
    std::string content_type;
    std::optional<std::uint64_t> content_length;
    std::optional<std::string> retry_after;
    // How much of the body had come when the exchange failed, and how it began.
    std::size_t body_received = 0;
    std::string body_start;
};

using ReplyParser = http::response_parser<http::string_body>;

void note_head(const ReplyParser& parser, Progress& progress) {
    const auto& head = parser.get();
    progress.status = static_cast<int>(head.result_int());
    progress.content_type = std::string(head[http::field::content_type]);
    if (auto length = parser.content_length()) {
        progress.content_length = *length;
    }
    if (auto it = head.find(http::field::retry_after); it != head.end()) {
        progress.retry_after = std::string(it->value());
    }
}

void note_body(const ReplyParser& parser, Progress& progress) {
    const std::string& body = parser.get().body();
    progress.body_received = body.size();
    progress.body_start = body_excerpt(body);
}

// "; HTTP 502, content type 'text/html', Content-Length 81920, 4096 body
// bytes received, starting '<html>...'", or nothing before the headers.
std::string describe_head(const Progress& progress) {
    if (progress.status == 0) {
        return {};
    }
    std::string text = "; HTTP " + std::to_string(progress.status) + ", content type '" +
                       printable(progress.content_type, error_field_length) + "'";
    if (progress.content_length) {
        text += ", Content-Length " + std::to_string(*progress.content_length);
    }
    if (progress.phase == Phase::body) {
        text += ", " + std::to_string(progress.body_received) + " body bytes received";
        if (progress.body_received > 0) {
            text += ", starting '" + progress.body_start + "'";
        }
    }
    return text;
}

std::chrono::steady_clock::duration to_duration(Seconds seconds) {
    return std::chrono::duration_cast<std::chrono::steady_clock::duration>(seconds);
}

ssl::context make_tls_context(const std::optional<std::string>& ca_file) {
    ssl::context context(ssl::context::tls_client);
    context.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                        ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    context.set_verify_mode(ssl::verify_peer);
    if (ca_file) {
        context.load_verify_file(*ca_file);
    } else {
        context.set_default_verify_paths();
    }
    return context;
}

bool is_ip_address(const std::string& host) {
    boost::system::error_code ec;
    asio::ip::make_address(host, ec);
    return !ec;
}

asio::awaitable<boost::system::error_code> connect(asio::any_io_executor executor,
                                                   tcp::socket& socket,
                                                   std::string host,
                                                   std::string port,
                                                   std::shared_ptr<Progress> progress) {
    tcp::resolver resolver(executor);
    auto [resolve_ec, endpoints] =
        co_await resolver.async_resolve(host, port, as_tuple(use_awaitable));
    if (resolve_ec) {
        co_return resolve_ec;
    }
    progress->phase = Phase::connect;
    auto [connect_ec, endpoint] =
        co_await asio::async_connect(socket, endpoints, as_tuple(use_awaitable));
    co_return connect_ec;
}

// "host:port" as CONNECT and Host want it, with brackets around IPv6.
std::string authority(const std::string& host, const std::string& port) {
    bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + port;
}

// Asks the proxy, already connected on `socket`, for a tunnel to `target`
// (host:port). Any answer but 2xx is an error, and the answer is kept in
// `progress` for the message. Credentials go in the request only.
asio::awaitable<boost::system::error_code> open_tunnel(tcp::socket& socket,
                                                       std::string target,
                                                       std::string proxy_name,
                                                       std::optional<std::string> authorization,
                                                       std::shared_ptr<Progress> progress) {
    http::request<http::empty_body> request{http::verb::connect, target, 11};
    request.set(http::field::host, target);
    request.set(http::field::user_agent, "iam-tokend/" IAM_TOKEND_VERSION);
    if (authorization) {
        request.set(http::field::proxy_authorization, *authorization);
    }
    auto [write_ec, written] = co_await http::async_write(socket, request, as_tuple(use_awaitable));
    if (write_ec) {
        co_return write_ec;
    }

    boost::beast::flat_buffer buffer;
    http::response_parser<http::empty_body> parser;
    parser.header_limit(max_reply_header);
    parser.skip(true); // a 2xx answer to CONNECT has no body: the tunnel follows it
    auto [read_ec, read] =
        co_await http::async_read_header(socket, buffer, parser, as_tuple(use_awaitable));
    if (read_ec) {
        co_return read_ec;
    }

    const auto& answer = parser.get();
    std::string refused = "proxy " + proxy_name + " would not open a tunnel to " + target + ": ";
    if (answer.result_int() / 100 != 2) {
        progress->proxy_problem = refused + "HTTP " + std::to_string(answer.result_int()) + " " +
                                  printable(answer.reason(), error_field_length);
        co_return asio::error::connection_refused;
    }
    if (buffer.size() != 0) {
        // TLS starts with our ClientHello; a proxy speaking first is broken.
        progress->proxy_problem = refused + "it sent data after its answer";
        co_return asio::error::connection_refused;
    }
    co_return boost::system::error_code{};
}

// Connects `socket` to IAM's `host` and `port`, directly or through a
// tunnel opened by `proxy`.
asio::awaitable<boost::system::error_code> open_connection(asio::any_io_executor executor,
                                                           tcp::socket& socket,
                                                           std::string host,
                                                           std::string port,
                                                           std::optional<ProxyEndpoint> proxy,
                                                           std::shared_ptr<Progress> progress) {
    if (!proxy) {
        co_return co_await connect(executor, socket, host, port, progress);
    }

    std::string target = authority(host, port);
    progress->peer = "proxy " + proxy->name();
    auto ec = co_await connect(executor, socket, proxy->host, proxy->port, progress);
    if (ec) {
        co_return ec;
    }
    progress->phase = Phase::tunnel;
    progress->peer = target + " via proxy " + proxy->name();
    co_return co_await open_tunnel(socket, target, proxy->name(), proxy->authorization, progress);
}

asio::awaitable<HttpReply>
exchange(asio::any_io_executor executor, HttpsRequest request, std::shared_ptr<Progress> progress) {
    auto url = boost::urls::parse_uri(request.url).value();
    std::string host = url.host_address();
    std::string port = url.has_port() ? std::string(url.port()) : "443";
    progress->peer = authority(host, port);

    std::optional<ProxyEndpoint> proxy;
    if (request.proxy) {
        auto parsed = parse_proxy(*request.proxy);
        if (!parsed) {
            progress->proxy_problem = "cannot use the proxy: " + parsed.error();
            throw boost::system::system_error(asio::error::invalid_argument);
        }
        proxy = std::move(*parsed);
    }

    ssl::context context = make_tls_context(request.ca_file);
    progress->phase = Phase::resolve;
    ssl::stream<tcp::socket> stream(executor, context);
    if (!is_ip_address(host)) {
        // SNI carries names only, never addresses (RFC 6066).
        // (SSL_set_tlsext_host_name, spelt out to avoid the macro's C cast.)
        SSL_ctrl(stream.native_handle(),
                 SSL_CTRL_SET_TLSEXT_HOSTNAME,
                 TLSEXT_NAMETYPE_host_name,
                 const_cast<char*>(host.c_str()));
    }
    stream.set_verify_callback(ssl::host_name_verification(host));

    // Resolving, connecting and opening a proxy's tunnel share the connect
    // deadline. (Asio's `||` waits for the first *success*, so the raced
    // coroutine returns its error instead of throwing it.)
    asio::steady_timer connect_deadline(executor, to_duration(request.timeouts.connect));
    auto connected = co_await (
        open_connection(executor, stream.next_layer(), host, port, std::move(proxy), progress) ||
        connect_deadline.async_wait(use_awaitable));
    if (connected.index() == 1) {
        throw boost::system::system_error(asio::error::timed_out);
    }
    if (auto ec = std::get<0>(connected)) {
        throw boost::system::system_error(ec);
    }

    progress->phase = Phase::handshake;
    try {
        co_await stream.async_handshake(ssl::stream_base::client, use_awaitable);
    } catch (const boost::system::system_error&) {
        long verdict = SSL_get_verify_result(stream.native_handle());
        if (verdict != X509_V_OK) {
            progress->tls_detail = X509_verify_cert_error_string(verdict);
        }
        throw;
    }

    progress->phase = Phase::send;
    std::string target(url.encoded_path());
    if (target.empty()) {
        target = "/";
    }
    if (url.has_query()) {
        target += "?" + std::string(url.encoded_query());
    }
    http::request<http::string_body> message{http::verb::post, target, 11};
    message.set(http::field::host, url.encoded_host_and_port());
    message.set(http::field::user_agent, "iam-tokend/" IAM_TOKEND_VERSION);
    message.set(http::field::connection, "close");
    for (const auto& [name, value] : request.headers) {
        message.set(name, value);
    }
    message.body() = std::move(request.body);
    message.prepare_payload();
    co_await http::async_write(stream, message, use_awaitable);

    progress->phase = Phase::headers;
    boost::beast::flat_buffer buffer;
    ReplyParser parser;
    parser.header_limit(max_reply_header);
    parser.body_limit(max_reply_body);
    // A Content-Length over the limit fails here, with the head parsed.
    auto [head_ec, head_bytes] =
        co_await http::async_read_header(stream, buffer, parser, as_tuple(use_awaitable));
    if (head_ec == http::error::body_limit) {
        note_head(parser, *progress);
    }
    if (head_ec) {
        throw boost::system::system_error(head_ec);
    }
    note_head(parser, *progress);

    progress->phase = Phase::body;
    auto [body_ec, body_bytes] =
        co_await http::async_read(stream, buffer, parser, as_tuple(use_awaitable));
    if (body_ec) {
        note_body(parser, *progress);
        throw boost::system::system_error(body_ec);
    }

    auto response = parser.release();
    HttpReply reply;
    reply.status = static_cast<int>(response.result_int());
    reply.content_type = std::string(response[http::field::content_type]);
    if (auto it = response.find(http::field::retry_after); it != response.end()) {
        reply.retry_after = std::string(it->value());
    }
    reply.body = std::move(response.body());
    co_return reply;
}

Failure classify(const boost::system::error_code& ec, const Progress& progress) {
    Failure failure;
    std::string where = std::string(to_string(progress.phase)) + " (" + progress.peer + ")";

    if (!progress.proxy_problem.empty()) {
        failure.kind = FailureKind::network;
        failure.message = progress.proxy_problem;
        return failure;
    }
    if (progress.phase == Phase::trust_store) {
        failure.kind = FailureKind::tls;
        failure.message = "cannot load the trust store: " + ec.message();
        return failure;
    }
    if (ec == asio::error::timed_out) {
        failure.kind = FailureKind::timeout;
        failure.message = "connect deadline passed while " + where;
        return failure;
    }
    if (ec == http::error::body_limit) {
        // The head is complete: its status and Retry-After still count.
        bool success = progress.status >= 200 && progress.status <= 299;
        failure.kind = success ? FailureKind::bad_response : FailureKind::http;
        failure.message =
            "reply body over the limit of " + std::to_string(max_reply_body) + " bytes, not read";
        failure.http_status = progress.status;
        if (progress.retry_after) {
            failure.retry_after =
                parse_retry_after(*progress.retry_after, std::chrono::system_clock::now());
        }
        return failure;
    }
    if (ec == http::error::header_limit) {
        failure.kind = FailureKind::bad_response;
        failure.message =
            "reply headers larger than " + std::to_string(max_reply_header) + " bytes";
        return failure;
    }
    if (ec == http::error::partial_message || ec == ssl::error::stream_truncated ||
        ec == http::error::end_of_stream) {
        failure.kind = FailureKind::network;
        failure.message = "connection closed before the reply was complete, while " + where;
        return failure;
    }
    if (progress.phase == Phase::handshake) {
        failure.kind = FailureKind::tls;
        failure.message = "TLS handshake failed with " + progress.peer + ": " + ec.message();
        if (!progress.tls_detail.empty()) {
            failure.message += " (" + progress.tls_detail + ")";
        }
        return failure;
    }
    if (ec.category() == make_error_code(http::error::body_limit).category()) {
        failure.kind = FailureKind::bad_response;
        failure.message = "malformed HTTP reply while " + where + ": " + ec.message();
        return failure;
    }
    failure.kind = FailureKind::network;
    failure.message = ec.message() + " while " + where;
    return failure;
}

// The exchange with its errors as values, ready to be raced with `||`.
asio::awaitable<boost::system::result<HttpReply, Failure>>
guarded_exchange(asio::any_io_executor executor,
                 HttpsRequest request,
                 std::shared_ptr<Progress> progress) {
    try {
        co_return co_await exchange(std::move(executor), std::move(request), progress);
    } catch (const boost::system::system_error& error) {
        Failure failure = classify(error.code(), *progress);
        failure.message += describe_head(*progress);
        co_return failure;
    } catch (const std::exception& error) {
        Failure failure;
        failure.message =
            std::string(error.what()) + " while " + std::string(to_string(progress->phase));
        co_return failure;
    }
}

} // namespace

asio::awaitable<boost::system::result<HttpReply, Failure>>
https_post(asio::any_io_executor executor, HttpsRequest request) {
    auto progress = std::make_shared<Progress>();
    Seconds limit = request.timeouts.request;
    asio::steady_timer deadline(executor, to_duration(limit));

    auto outcome = co_await (guarded_exchange(executor, std::move(request), progress) ||
                             deadline.async_wait(use_awaitable));
    if (outcome.index() == 0) {
        co_return std::get<0>(std::move(outcome));
    }
    Failure failure;
    failure.kind = FailureKind::timeout;
    failure.message = fmt::format("request deadline of {:g} s passed while {} ({}){}",
                                  limit.count(),
                                  to_string(progress->phase),
                                  progress->peer,
                                  describe_head(*progress));
    co_return failure;
}

} // namespace iam_tokend
