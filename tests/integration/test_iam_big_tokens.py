#!/usr/bin/env python3
"""Case 10, big tokens: access tokens of 4, 9, 17 and 64 KiB and a 6 KiB
refresh token pass through byte for byte, in every format, over one
keep-alive connection; a token over the 64 KiB limit is an error of that
attempt that names both sizes, and is never served cut short."""

import json
import time
import unittest

from harness import IntegrationTest, UnixHTTPConnection, wait_until
from iam_faults import Poller, log_lines, refresh_token_id, sha256, wait_for_request

KIB = 1024
SIZES = (4 * KIB, 9 * KIB, 17 * KIB, 64 * KIB)
REFRESH_TOKEN_BYTES = 6 * KIB
# The daemon's limit on one token (common/iam_response.hpp).
MAX_TOKEN_SIZE = 64 * KIB
LIFE_S = 2


class BigTokensTest(IntegrationTest):

    def test_big_tokens_pass_whole(self):
        self.start_fake(token_life=LIFE_S)
        self.fake.set(refresh_token_bytes=REFRESH_TOKEN_BYTES)
        self.start_daemon(profile={"refresh": {"min_valid_s": 0.5}})
        self.get_token()

        for size in SIZES:
            self.fake.set(access_token_bytes=size)
            token = wait_until(lambda: self.served_of_size(size), 8, f"a {size}-byte token")
            self.assert_same_in_every_format(token)

        refreshes = self.fake.grants("refresh_token")
        self.assertTrue(refreshes)
        self.assertTrue(all(r["status"] == 200 and r["refresh_token_known"] for r in refreshes))
        sent = {r["refresh_token_sha256"] for r in refreshes}
        issued = {refresh_token_id(t): t for t in self.fake.issued()["refresh_tokens"]}
        self.assertTrue(all(len(issued[s]) == REFRESH_TOKEN_BYTES for s in sent))

        since = time.time()
        self.fake.set(access_token_bytes=MAX_TOKEN_SIZE + 1)
        with Poller(self.daemon, "/v1/token?format=raw&wait=0") as poller:
            wait_for_request(self.fake, since, "a reply with an oversized token")
            says = f"access_token is {MAX_TOKEN_SIZE + 1} bytes, over the limit of " \
                   f"{MAX_TOKEN_SIZE} bytes"
            wait_until(lambda: log_lines(self.daemon, says), 5, "the oversized token's error")
        served = {body for _, status, body in poller.replies if status == 200}
        self.assertTrue(all(len(token) == MAX_TOKEN_SIZE for token in served))
        self.assertIsNone(self.daemon.proc.poll())

    def served_of_size(self, size):
        reply = self.daemon.get("/v1/token?format=raw")
        return reply.text if reply.status == 200 and len(reply.body) == size else None

    def assert_same_in_every_format(self, token):
        issued = {sha256(t) for t in self.fake.issued()["access_tokens"]}
        self.assertIn(sha256(token), issued)

        connection = UnixHTTPConnection(self.daemon.socket_path)
        try:
            bodies = {}
            for fmt in ("json", "header", "raw"):
                connection.request("GET", f"/v1/token?format={fmt}")
                reply = connection.getresponse()
                self.assertEqual(reply.status, 200, fmt)
                bodies[fmt] = reply.read().decode()
                if fmt == "json":
                    first_socket = connection.sock
                self.assertIs(connection.sock, first_socket, "the connection was not kept")
        finally:
            connection.close()

        # The token may have been refreshed between two of the requests.
        for value in (json.loads(bodies["json"])["access_token"],
                      bodies["header"].removeprefix("Bearer "), bodies["raw"]):
            self.assertIn(sha256(value), issued)
            self.assertEqual(len(value), len(token))


if __name__ == "__main__":
    unittest.main()
