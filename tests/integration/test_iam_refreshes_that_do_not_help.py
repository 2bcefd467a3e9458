#!/usr/bin/env python3
"""Case 6, refreshes that don't help: an IAM that hands back the same token
with its remaining life, or tokens that live barely longer than
min_valid_s (or not even that), must not drive the daemon into a loop of
requests: attempts stay at least a second apart, "no progress" is said
once, and the retries follow the backoff."""

import time
import unittest

from harness import IntegrationTest, wait_until
from iam_faults import Poller, gaps, log_lines, requests_after

# The daemon never plans an attempt sooner than this after the previous one.
MIN_GAP_S = 0.95
NO_GAIN = "warn.*IAM sent token \\w+ again.*no progress"


class RefreshesThatDoNotHelpTest(IntegrationTest):

    def test_same_token_again(self):
        self.start_fake(token_life=10)
        # The first refresh is due about 3 s after the login.
        self.start_daemon(profile={"refresh": {"at_fraction": 0.3, "jitter_fraction": 0.01}})
        first = self.get_token()
        issued_at = self.fake.issued()["access_token_details"][0]["issued_at"]
        self.fake.set(same_token=True)

        with Poller(self.daemon, "/v1/token?format=raw&wait=0") as poller:
            time.sleep(max(0.0, issued_at + 8 - time.time()))

        tried = requests_after(self.fake, issued_at)
        self.assertGreaterEqual(len(tried), 2, "no retries after the first useless refresh")
        self.assertTrue(all(gap >= MIN_GAP_S for gap in gaps(tried)), gaps(tried))
        self.assertEqual(len(log_lines(self.daemon, NO_GAIN)), 1, self.daemon.log_tail())
        self.assertEqual({body for _, status, body in poller.replies if status == 200}, {first})
        self.assertEqual(set(poller.statuses()), {200})
        # Between attempts the state is "degraded"; an attempt may be under
        # way ("refreshing") at the moment of asking, so ask until between.
        status = wait_until(
            lambda: (lambda s: s if s["state"] == "degraded" else None)(self.daemon.profile_status()),
            3, "the degraded state between attempts")
        self.assertIn("no progress", status["last_error"]["message"])

        self.fake.set(same_token=False)
        wait_until(lambda: self.get_token() != first, 5, "a new token once IAM mints one")

    def test_tokens_that_could_never_be_served(self):
        # The 45 s tokens with min_valid_s 60, scaled down.
        self.start_fake(token_life=4)
        self.start_daemon(profile={"refresh": {"min_valid_s": 6}})
        started = time.time()

        reply = self.daemon.get("/v1/token?wait=2")
        time.sleep(5)

        self.assertEqual(reply.status, 503, reply)
        self.assertIn("lives 4 s, not more than min_valid_s 6 s", reply.json()["message"])
        tried = requests_after(self.fake, started - 1)
        self.assertGreaterEqual(len(tried), 3)
        self.assertTrue(all(gap >= MIN_GAP_S for gap in gaps(tried)), gaps(tried))
        self.assertEqual(self.daemon.get("/v1/health").status, 503)

    def test_tokens_barely_longer_than_min_valid(self):
        # Servable for one second each: refreshes come no faster than that.
        self.start_fake(token_life=7)
        self.start_daemon(profile={"refresh": {"min_valid_s": 6}})
        started = time.time()
        self.assert_issued(self.get_token())

        time.sleep(6)

        tried = requests_after(self.fake, started - 1)
        self.assertGreaterEqual(len(tried), 3)
        self.assertTrue(all(gap >= MIN_GAP_S for gap in gaps(tried)), gaps(tried))
        self.assertIsNone(self.daemon.proc.poll())


if __name__ == "__main__":
    unittest.main()
