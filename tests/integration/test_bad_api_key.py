#!/usr/bin/env python3
"""An API key IAM does not know: the error is reported with IAM's code, the
daemon keeps running and retries slowly."""

import time
import unittest

from harness import APIKEY_GRANT, IntegrationTest

WATCH_S = 4
# backoff_max_s is 2 in the test config and a credential error is retried
# at that cap; even with full jitter (waits drawn from 0 to the cap) only a
# handful of attempts fit in WATCH_S, where a loop would make hundreds.
MAX_ATTEMPTS_WHILE_WATCHING = 8
IAM_MESSAGE = "Provided API key could not be found."


class BadApiKeyTest(IntegrationTest):

    def setUp(self):
        super().setUp()
        self.start_fake(api_keys=["a-key-the-daemon-does-not-have"])
        self.start_daemon()

    def test_error_carries_iam_code_and_daemon_keeps_running(self):
        error = self.wait_for_last_error()

        self.assertEqual(error["error_code"], "BXNIM0415E", error)
        self.assertEqual(error["http_status"], 400)
        self.assertIn(error["kind"], ("iam", "credential"))
        self.assertIn(IAM_MESSAGE, error["message"])
        request_ids = {r["request_id"] for r in self.fake.token_requests()}
        self.assertIn(error["request_id"], request_ids)

        watch_start = time.time()
        time.sleep(WATCH_S)
        self.assertIsNone(self.daemon.proc.poll(), "the daemon exited")
        attempts = [r for r in self.fake.grants(APIKEY_GRANT)
                    if r["time"] >= watch_start]
        self.assertGreaterEqual(len(attempts), 1, "the daemon stopped retrying")
        self.assertLessEqual(len(attempts), MAX_ATTEMPTS_WHILE_WATCHING)
        self.assertTrue(all(r["status"] == 400 for r in attempts))

        status = self.daemon.profile_status()
        self.assertGreaterEqual(status["consecutive_failures"], 2)
        self.assertGreaterEqual(status["counters"]["failures"], 2)
        self.assertEqual(self.daemon.get("/v1/health").status, 503)

    def test_key_appears_nowhere_in_status(self):
        self.wait_for_last_error()
        reply = self.daemon.get("/v1/status")
        self.assertEqual(reply.status, 200, reply)
        self.assertNotIn(self.api_key, reply.text)


if __name__ == "__main__":
    unittest.main()
