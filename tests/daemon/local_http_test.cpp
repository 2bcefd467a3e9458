#include "local_http.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace iam_tokend {
namespace {

using State = RequestReader::State;

// Feeds `bytes` in pieces of `piece`, as reads from a socket would deliver
// them, keeping what the reader leaves for the next call; returns the rest.
std::string feed_in_pieces(RequestReader& reader, std::string_view bytes, std::size_t piece) {
    std::string buffered;
    while (reader.state() == State::reading && !bytes.empty()) {
        std::size_t take = std::min(piece, bytes.size());
        buffered.append(bytes.substr(0, take));
        bytes.remove_prefix(take);
        buffered.erase(0, reader.feed(buffered));
    }
    return buffered + std::string(bytes);
}

TEST(RequestReaderTest, ReadsARequestDeliveredByteByByte) {
    RequestReader reader;
    std::string rest =
        feed_in_pieces(reader, "GET /v1/token?format=raw HTTP/1.1\r\nHost: x\r\n\r\n", 1);
    ASSERT_EQ(reader.state(), State::complete);
    EXPECT_TRUE(rest.empty());
    EXPECT_EQ(reader.request().method, "GET");
    EXPECT_EQ(reader.request().target, "/v1/token?format=raw");
    EXPECT_EQ(reader.version(), 11U);
    EXPECT_TRUE(reader.keep_alive());
}

TEST(RequestReaderTest, LeavesAPipelinedRequestForTheNextReader) {
    RequestReader first;
    std::string rest = feed_in_pieces(first,
                                      "GET /v1/health HTTP/1.1\r\n\r\n"
                                      "POST /v1/refresh HTTP/1.0\r\n\r\n",
                                      1000);
    ASSERT_EQ(first.state(), State::complete);
    EXPECT_EQ(first.request().target, "/v1/health");

    RequestReader second;
    EXPECT_EQ(second.feed(rest), rest.size());
    ASSERT_EQ(second.state(), State::complete);
    EXPECT_EQ(second.request().method, "POST");
    EXPECT_FALSE(second.keep_alive());
}

TEST(RequestReaderTest, AbsoluteTargetsAndEmptyLinesAreAccepted) {
    RequestReader reader;
    feed_in_pieces(reader, "\r\n\r\nGET http://localhost/v1/token?wait=1 HTTP/1.1\r\n\r\n", 3);
    ASSERT_EQ(reader.state(), State::complete);
    EXPECT_EQ(reader.request().target, "/v1/token?wait=1");
}

// Beast bounds the header seen by one call only; the reader bounds the sum.
TEST(RequestReaderTest, BoundsAHeaderThatArrivesInManyReads) {
    std::string request = "GET / HTTP/1.1\r\n";
    while (request.size() <= max_request_header) {
        request += "X-Filler: 0123456789012345678901234567890123456789\r\n";
    }
    request += "\r\n";
    for (std::size_t piece : {std::size_t{64}, std::size_t{4096}, request.size()}) {
        RequestReader reader;
        feed_in_pieces(reader, request, piece);
        ASSERT_EQ(reader.state(), State::malformed) << piece;
        EXPECT_EQ(reader.refusal().status, 431U) << piece;
    }
}

TEST(RequestReaderTest, RefusesBadRequestsAndLargeBodies) {
    RequestReader malformed;
    feed_in_pieces(malformed, "GET / HTTP/x\r\n\r\n", 100);
    ASSERT_EQ(malformed.state(), State::malformed);
    EXPECT_EQ(malformed.refusal().status, 400U);

    RequestReader large;
    feed_in_pieces(large, "GET / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n", 100);
    ASSERT_EQ(large.state(), State::malformed);
    EXPECT_EQ(large.refusal().status, 413U);

    RequestReader small;
    std::string rest =
        feed_in_pieces(small, "GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET", 5);
    ASSERT_EQ(small.state(), State::complete);
    EXPECT_EQ(rest, "GET");
}

TEST(RenderTest, HeadHasStatusLineServerTypeOwnFieldsAndLength) {
    LocalReply reply = Router::error(503, "token_unavailable", "none yet");
    reply.headers.emplace_back("Retry-After", "3");
    RenderedReply rendered = render(reply);
    EXPECT_EQ(rendered.status, 503U);
    EXPECT_EQ(rendered.body, reply.body);
    EXPECT_EQ(rendered.head,
              "HTTP/1.1 503 Service Unavailable\r\n"
              "Server: iam-tokend\r\n"
              "Content-Type: application/json\r\n"
              "Retry-After: 3\r\n"
              "Content-Length: " +
                  std::to_string(reply.body.size()) + "\r\n");
}

TEST(RenderTest, WireFollowsTheRequestsVersionAndConnection) {
    LocalReply reply;
    reply.content_type = "text/plain";
    reply.body = "abc";
    RenderedReply rendered = render(reply);
    std::string head = "Server: iam-tokend\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n";

    EXPECT_EQ(wire(rendered, 11, true), "HTTP/1.1 200 OK\r\n" + head + "\r\nabc");
    EXPECT_EQ(wire(rendered, 11, false),
              "HTTP/1.1 200 OK\r\n" + head + "Connection: close\r\n\r\nabc");
    EXPECT_EQ(wire(rendered, 10, true),
              "HTTP/1.0 200 OK\r\n" + head + "Connection: keep-alive\r\n\r\nabc");
    EXPECT_EQ(wire(rendered, 10, false),
              "HTTP/1.0 200 OK\r\n" + head + "Connection: close\r\n\r\nabc");
}

TEST(RequestReaderTest, ResetReadsTheNextRequestWithTheSameReader) {
    RequestReader reader;
    feed_in_pieces(reader, "GET /v1/token/a-long-profile-name?format=raw HTTP/1.1\r\n\r\n", 64);
    ASSERT_EQ(reader.state(), State::complete);
    EXPECT_EQ(reader.target(), "/v1/token/a-long-profile-name?format=raw");

    reader.reset();
    EXPECT_EQ(reader.state(), State::reading);
    feed_in_pieces(reader, "POST /v1/refresh HTTP/1.0\r\n\r\n", 64);
    ASSERT_EQ(reader.state(), State::complete);
    EXPECT_EQ(reader.method(), "POST");
    EXPECT_EQ(reader.target(), "/v1/refresh");
    EXPECT_EQ(reader.version(), 10U);
    EXPECT_FALSE(reader.keep_alive());
}

} // namespace
} // namespace iam_tokend
