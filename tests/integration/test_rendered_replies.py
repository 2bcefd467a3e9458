#!/usr/bin/env python3
"""Token replies are rendered once and shared between requests: they must
still change whenever what they say changes, and carry the right framing
for every client."""

import json
import os
import signal
import socket
import time
import unittest

from harness import CLIENT_TIMEOUT_S, IntegrationTest, wait_until

TOKEN_LIFE_S = 3600
RELOAD_TIMEOUT_S = 5.0
READ_CHUNK = 65536


def exchange(path, raw_request, expect_close):
    """Sends raw_request on a new connection; returns (head, body, closed)
    where closed tells whether the daemon closed the connection after the
    reply."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(CLIENT_TIMEOUT_S)
    try:
        sock.connect(path)
        sock.sendall(raw_request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(READ_CHUNK)
            if not chunk:
                raise AssertionError(f"connection closed inside the head: {data!r}")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")))
        while len(body) < length:
            chunk = sock.recv(READ_CHUNK)
            if not chunk:
                raise AssertionError("connection closed inside the body")
            body += chunk
        # A closed connection reads as end of stream; an open one times out.
        sock.settimeout(0.5 if expect_close else 0.2)
        try:
            closed = sock.recv(READ_CHUNK) == b""
        except socket.timeout:
            closed = False
        return head.decode("latin-1"), body, closed
    finally:
        sock.close()


class RenderedRepliesTest(IntegrationTest):

    def test_json_countdown_moves_on_between_shared_replies(self):
        self.start_fake(token_life=TOKEN_LIFE_S)
        self.start_daemon()
        first = self.daemon.get("/v1/token").json()
        # Many requests inside one second share one rendering...
        for _ in range(20):
            self.assertEqual(self.daemon.get("/v1/token").json()["access_token"],
                             first["access_token"])
        # ...and a later second gets a new one with less time left.
        time.sleep(2.1)
        later = self.daemon.get("/v1/token").json()
        self.assertEqual(later["access_token"], first["access_token"])
        self.assertLess(later["expires_in"], first["expires_in"])
        self.assertLessEqual(later["refresh_in"], first["refresh_in"])

    def test_a_new_token_replaces_every_rendered_format(self):
        self.start_fake(token_life=TOKEN_LIFE_S)
        self.start_daemon()
        before = {fmt: self.daemon.get(f"/v1/token?format={fmt}").text
                  for fmt in ("json", "raw", "header")}
        old = before["raw"]

        refreshed = self.daemon.request("POST", "/v1/refresh")
        self.assertEqual(refreshed.status, 200, refreshed)
        new = self.daemon.get("/v1/token?format=raw").text
        self.assertNotEqual(new, old)
        self.assert_issued(new)
        self.assertEqual(self.daemon.get("/v1/token?format=header").text, f"Bearer {new}")
        self.assertEqual(self.daemon.get("/v1/token").json()["access_token"], new)
        self.assertIn(old, before["json"])

    def test_connection_field_follows_the_request(self):
        self.start_fake(token_life=TOKEN_LIFE_S)
        self.start_daemon()
        path = self.daemon.socket_path
        self.get_token()

        head, body, closed = exchange(
            path, b"GET /v1/token?format=raw HTTP/1.1\r\nHost: x\r\n\r\n", False)
        self.assertTrue(head.startswith("HTTP/1.1 200 OK\r\n"), head)
        self.assertNotIn("Connection:", head)
        self.assertIn("Cache-Control: no-store", head.split("\r\n"))
        self.assertFalse(closed)
        self.assert_issued(body.decode())

        head, _, closed = exchange(
            path, b"GET /v1/token HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", True)
        self.assertIn("Connection: close", head.split("\r\n"))
        self.assertTrue(closed)

        head, _, closed = exchange(path, b"GET /v1/token HTTP/1.0\r\n\r\n", True)
        self.assertIn("Connection: close", head.split("\r\n"))
        self.assertTrue(closed)

        head, _, closed = exchange(
            path, b"GET /v1/token HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", False)
        self.assertIn("Connection: keep-alive", head.split("\r\n"))
        self.assertFalse(closed)

    def test_reload_that_changes_the_default_profile_is_followed(self):
        self.start_fake(token_life=TOKEN_LIFE_S)
        profile = {"iam_url": self.fake.token_url, "api_key_file": self.api_key_file,
                   "ca_file": self.pki["ca"]}
        self.start_daemon(top={"profiles": {"other": profile}, "default_profile": "default"})
        self.assertEqual(self.daemon.get("/v1/token").json()["profile"], "default")

        with open(self.daemon.config_path, encoding="utf-8") as f:
            config = json.load(f)
        config["default_profile"] = "other"
        with open(self.daemon.config_path, "w", encoding="utf-8") as f:
            json.dump(config, f)
        os.kill(self.daemon.proc.pid, signal.SIGHUP)

        wait_until(lambda: self.daemon.get("/v1/token").json()["profile"] == "other",
                   RELOAD_TIMEOUT_S, "the reloaded default profile in /v1/token")

    def test_unknown_query_after_remembered_route_is_still_refused(self):
        self.start_fake(token_life=TOKEN_LIFE_S)
        self.start_daemon()
        self.assertEqual(self.daemon.get("/v1/token?format=raw").status, 200)
        self.assertEqual(self.daemon.get("/v1/token?format=raw&x=1").status, 400)
        self.assertEqual(self.daemon.get("/v1/token?format=raw").status, 200)
        self.assertEqual(self.daemon.request("POST", "/v1/token?format=raw").status, 405)


if __name__ == "__main__":
    unittest.main()
