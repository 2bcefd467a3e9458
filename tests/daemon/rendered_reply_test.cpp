#include "rendered_reply.hpp"

#include <gtest/gtest.h>

namespace iam_tokend {
namespace {

TEST(RenderedReply, HeadHasStatusLineServerTypeOwnFieldsAndLength) {
    LocalReply reply;
    reply.status = 503;
    reply.body = R"({"error":"x"})";
    reply.headers.emplace_back("Retry-After", "7");

    RenderedReply rendered = render(reply);
    EXPECT_EQ(rendered.status, 503U);
    EXPECT_EQ(rendered.head,
              "HTTP/1.1 503 Service Unavailable\r\n"
              "Server: iam-tokend\r\n"
              "Content-Type: application/json\r\n"
              "Retry-After: 7\r\n"
              "Content-Length: 13\r\n");
    EXPECT_EQ(rendered.body, reply.body);
}

TEST(RenderedReply, EmptyBodyHasLengthZero) {
    LocalReply reply;
    reply.content_type = "text/plain";
    RenderedReply rendered = render(reply);
    EXPECT_NE(rendered.head.find("Content-Length: 0\r\n"), std::string::npos);
    EXPECT_TRUE(rendered.body.empty());
}

TEST(RenderedReply, EndOfHeadSaysWhatDiffersFromTheVersionsDefault) {
    EXPECT_EQ(end_of_head(11, true), "\r\n");
    EXPECT_EQ(end_of_head(11, false), "Connection: close\r\n\r\n");
    EXPECT_EQ(end_of_head(10, true), "Connection: keep-alive\r\n\r\n");
    EXPECT_EQ(end_of_head(10, false), "Connection: close\r\n\r\n");
}

} // namespace
} // namespace iam_tokend
