#!/usr/bin/env python3
"""Odd requests from local clients (issue case 13).

Requests without a Host header, with an empty one or with a made-up one are
served: access is the socket's business, not a name's. A malformed request
gets 400, a header over the limit 431, a body over the limit 413 (and the
connection is closed after each), and pipelined requests are answered in
the order they were sent.
"""

import unittest

from harness import IntegrationTest, raw_exchange, split_responses

# The daemon's limits (daemon/local_http.hpp).
MAX_HEADER = 8 * 1024
MAX_BODY = 4 * 1024


def request(target="/v1/token?format=raw", method="GET", headers=(), version="1.1",
            body=b""):
    lines = [f"{method} {target} HTTP/{version}", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class OddRequestsTest(IntegrationTest):

    def setUp(self):
        super().setUp()
        self.start_fake()
        self.start_daemon()
        self.token = self.get_token()

    def exchange(self, data):
        return split_responses(raw_exchange(self.daemon.socket_path, data))

    def assert_token_reply(self, data, why):
        replies = self.exchange(data)
        self.assertEqual(len(replies), 1, f"{why}: {replies}")
        self.assertEqual(replies[0].status, 200, f"{why}: {replies[0]}")
        self.assertEqual(replies[0].body.decode(), self.token, why)

    def assert_refused(self, data, status, why):
        replies = self.exchange(data)
        self.assertEqual(len(replies), 1, f"{why}: one reply, then the connection closes")
        self.assertEqual(replies[0].status, status, f"{why}: {replies[0]}")
        self.assertEqual(replies[0].headers.get("connection"), "close", why)
        self.assertIn("error", replies[0].json(), why)

    def test_any_host_header_is_served(self):
        self.assert_token_reply(request(), "no Host header")
        self.assert_token_reply(request(headers=["Host:"]), "an empty Host header")
        self.assert_token_reply(request(headers=["Host: unix:/x.sock"]), "Host: unix:/x.sock")
        self.assert_token_reply(request(version="1.0"), "HTTP/1.0 without Host")

    def test_absolute_target_and_leading_empty_lines_are_served(self):
        self.assert_token_reply(request("http://localhost/v1/token?format=raw"),
                                "a target in absolute form")
        self.assert_token_reply(b"\r\n\r\n" + request(), "empty lines before the request line")

    def test_malformed_requests_get_400(self):
        malformed = {
            "not HTTP at all": b"HELLO THERE\r\n\r\n",
            "no target": b"GET\r\n\r\n",
            "no version": b"GET /v1/token\r\n\r\n",
            "a bad version": b"GET /v1/token HTTP/one\r\n\r\n",
            "binary junk": bytes(range(256)) + b"\r\n\r\n",
            "a header without a colon": request(headers=["Host localhost"]),
            "a bad Content-Length": request(headers=["Content-Length: lots"]),
            "two Content-Lengths": request(headers=["Content-Length: 1",
                                                    "Content-Length: 2"]) + b"ab",
            "a space in the target": b"GET /v1/token x HTTP/1.1\r\n\r\n",
        }
        for why, data in malformed.items():
            with self.subTest(why):
                self.assert_refused(data, 400, why)

    def test_bad_targets_get_400_and_unknown_methods_405(self):
        replies = self.exchange(request("/v1/token?wait=forever"))
        self.assertEqual(replies[0].status, 400, replies)
        replies = self.exchange(request("*", method="OPTIONS"))
        self.assertEqual(replies[0].status, 400, replies)
        replies = self.exchange(request(method="BREW"))
        self.assertEqual(replies[0].status, 405, replies)

    def test_headers_over_the_limit_get_431(self):
        self.assert_refused(request(headers=["X-Filler: " + "a" * MAX_HEADER]), 431,
                            "one large header field")
        self.assert_refused(request(headers=[f"X-Filler-{i}: {'b' * 100}" for i in range(100)]),
                            431, "many header fields")
        self.assert_refused(request("/v1/token?format=raw&" + "c" * MAX_HEADER), 431,
                            "a long target")

    def test_header_just_under_the_limit_is_served(self):
        filler = "X-Filler: " + "d" * (MAX_HEADER - 200)
        self.assert_token_reply(request(headers=[filler]), "a large header under the limit")

    def test_body_on_get_over_the_limit_gets_413(self):
        self.assert_refused(request(body=b"e" * (MAX_BODY + 1)), 413,
                            "a Content-Length body over the limit")
        chunk = b"f" * 1000
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(6)) + b"0\r\n\r\n"
        self.assert_refused(request(headers=["Transfer-Encoding: chunked"]) + chunked, 413,
                            "a chunked body over the limit")

    def test_small_body_on_get_is_ignored(self):
        self.assert_token_reply(request(body=b"g" * 100), "a small body on GET")

    def test_pipelined_requests_are_answered_in_order(self):
        data = (request("/v1/token?format=raw")
                + request("/v1/health")
                + request("/v1/nowhere")
                + request("/v1/token?format=header", body=b"h" * 10)
                + request("/v1/token?format=raw"))
        replies = self.exchange(data)
        self.assertEqual([r.status for r in replies], [200, 200, 404, 200, 200], replies)
        self.assertEqual(replies[0].body.decode(), self.token)
        self.assertEqual(replies[1].json(), {"status": "ok"})
        self.assertEqual(replies[2].json()["error"], "not_found")
        self.assertEqual(replies[3].body.decode(), "Bearer " + self.token)
        self.assertEqual(replies[4].body.decode(), self.token)

    def test_pipeline_stops_at_a_malformed_request(self):
        data = request("/v1/health") + b"NONSENSE\r\n\r\n" + request("/v1/health")
        replies = self.exchange(data)
        self.assertEqual([r.status for r in replies], [200, 400], replies)

    def test_connection_close_is_honoured(self):
        data = request(headers=["Connection: close"]) + request("/v1/health")
        replies = self.exchange(data)
        self.assertEqual([r.status for r in replies], [200], replies)
        self.assertEqual(replies[0].headers.get("connection"), "close")


if __name__ == "__main__":
    unittest.main()
