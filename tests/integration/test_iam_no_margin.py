#!/usr/bin/env python3
"""Case 1, no margin at the edge: a token is served while more than
min_valid_s of its life is left and never after, even while IAM answers
every refresh with 503. The issue's 120 s life and 60 s min_valid are
scaled down by ten."""

import time
import unittest

from harness import IntegrationTest
from iam_faults import Poller, log_lines, requests_after

TOKEN_LIFE_S = 12
MIN_VALID_S = 6
# "At 70 s left the token is served": 7 s left, scaled.
STILL_SERVED_LEFT_S = 7
# Past the edge by this much, every reply must be a 503.
AFTER_EDGE_S = 0.5
WATCH_UNTIL_S = 9


class NoMarginTest(IntegrationTest):

    def test_served_above_min_valid_never_below(self):
        self.start_fake(token_life=TOKEN_LIFE_S)
        self.start_daemon(profile={"refresh": {"min_valid_s": MIN_VALID_S}})
        first = self.get_token()
        issued = self.fake.issued()["access_token_details"][0]
        self.fake.set(fail_status=503)
        # The daemon counts the life from before it sent the request, so it
        # stops serving no later than this (by the fake's clock).
        edge = issued["issued_at"] + TOKEN_LIFE_S - MIN_VALID_S

        with Poller(self.daemon, "/v1/token?wait=0.5") as poller:
            time.sleep(max(0.0, issued["issued_at"] + WATCH_UNTIL_S - time.time()))
        health = self.daemon.get("/v1/health")
        self.assertIsNone(self.daemon.proc.poll(), "the daemon exited")

        served = [(sent, body) for sent, status, body in poller.replies if status == 200]
        refused = [(sent, body) for sent, status, body in poller.replies if status != 200]
        self.assertTrue(served and refused, poller.statuses())
        self.assertGreaterEqual(max(sent for sent, _ in served),
                                issued["issued_at"] + TOKEN_LIFE_S - STILL_SERVED_LEFT_S,
                                "not served with 7 s (70 s) left")
        for sent, body in served:
            self.assertLess(sent, edge, "served with less than min_valid_s left")
            self.assertTrue(first in body, "served another token than the first")
        for sent, status, body in poller.replies:
            if sent > edge + AFTER_EDGE_S:
                self.assertEqual(status, 503, f"{sent - edge:.2f} s past the edge")
                self.assertIn('"token_unavailable"', body)

        last = self.daemon.get("/v1/token?wait=0")
        self.assertEqual(last.status, 503)
        self.assertGreaterEqual(int(last.headers["Retry-After"]), 1)
        self.assertEqual(health.status, 503, health)
        self.assertEqual(health.json()["profiles"], ["default"])
        self.assertEqual(self.daemon.profile_status()["state"], "expired")
        self.assertEqual(len(log_lines(self.daemon, "is no longer servable")), 1,
                         self.daemon.log_tail())

        # Refreshes were tried before the edge, not only after it.
        tried = requests_after(self.fake, issued["issued_at"])
        self.assertTrue(tried and tried[0]["time"] < edge, tried)


if __name__ == "__main__":
    unittest.main()
