#!/usr/bin/env python3
"""IAM is unreachable or failing when the daemon starts: clients get a 503
with Retry-After, and the first token arrives once IAM is back, without a
restart."""

import time
import unittest

from harness import IntegrationTest, reserve_port

CLIENT_WAIT_S = 1
# How far past its `wait` a 503 may arrive.
REPLY_SLACK_S = 2
# With backoff_max_s 2 in the test config, a retry follows well within this.
RECOVERY_WAIT_S = 8
# Generous for backoff from 0.2 s doubling to 2 s, far below a tight loop.
MAX_ATTEMPTS_WHILE_DOWN = 25
DOWN_S = 3


class IamDownAtStartTest(IntegrationTest):

    def test_iam_answering_503_then_recovering(self):
        self.start_fake()
        self.fake.set(fail_status=503, fail_count=-1, retry_after="1")
        self.start_daemon()

        self.assert_token_unavailable()
        health = self.daemon.get("/v1/health")
        self.assertEqual(health.status, 503, health)
        self.assertIn("default", health.json().get("profiles", []))

        time.sleep(DOWN_S)
        error = self.daemon.profile_status()["last_error"]
        self.assertIsNotNone(error)
        self.assertEqual(error["http_status"], 503)
        self.assertEqual(error["error_code"], "BXNIM0500E")
        failed = self.fake.token_requests()
        self.assertGreaterEqual(len(failed), 2, "the daemon did not retry")
        self.assertLessEqual(len(failed), MAX_ATTEMPTS_WHILE_DOWN)
        self.assertTrue(all(r["status"] == 503 for r in failed))

        self.fake.reset()
        self.assert_token_arrives()

    def test_nothing_listening_then_iam_starts(self):
        port, reserved = reserve_port()
        try:
            self.start_daemon(token_url=f"https://127.0.0.1:{port}/identity/token")
            self.assert_token_unavailable()
            error = self.wait_for_last_error()
            self.assertEqual(error["kind"], "network", error)
        finally:
            reserved.close()

        self.start_fake(port=port)
        self.assert_token_arrives()

    def assert_token_unavailable(self):
        started = time.monotonic()
        reply = self.daemon.get(f"/v1/token?wait={CLIENT_WAIT_S}")
        elapsed = time.monotonic() - started

        self.assertEqual(reply.status, 503, reply)
        self.assertEqual(reply.json()["error"], "token_unavailable")
        retry_after = reply.headers.get("Retry-After")
        self.assertIsNotNone(retry_after, "503 without Retry-After")
        self.assertRegex(retry_after, r"^[0-9]+$")
        self.assertGreaterEqual(int(retry_after), 1)
        self.assertLess(elapsed, CLIENT_WAIT_S + REPLY_SLACK_S)

    def assert_token_arrives(self):
        reply = self.daemon.get(f"/v1/token?wait={RECOVERY_WAIT_S}",
                                timeout=RECOVERY_WAIT_S + REPLY_SLACK_S)
        self.assertEqual(reply.status, 200, reply)
        self.assert_issued(reply.json()["access_token"])
        self.assertIsNone(self.daemon.proc.poll(), "the daemon exited")
        self.assertEqual(self.daemon.get("/v1/health").status, 200)


if __name__ == "__main__":
    unittest.main()
