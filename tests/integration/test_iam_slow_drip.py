#!/usr/bin/env python3
"""Case 8, slow drip: IAM sends its reply one byte a second. timeouts.request_s
bounds the whole exchange, not the gap between reads; the log names the
phase that ran out of time; clients holding a valid token are answered at
once meanwhile."""

import time
import unittest

from harness import IntegrationTest, wait_until
from iam_faults import Poller, requests_after

REQUEST_S = 3
DRIP_S = 1.0
# How late past its deadline an attempt may be declared failed.
DEADLINE_SLACK_S = 1.0
AT_ONCE_S = 0.5


class SlowDripTest(IntegrationTest):

    def test_request_deadline_covers_the_whole_exchange(self):
        self.start_fake(token_life=60)
        # Refreshing starts about 3 s after the login.
        self.start_daemon(profile={"timeouts": {"request_s": REQUEST_S},
                                   "refresh": {"at_fraction": 0.05, "jitter_fraction": 0.01}})
        first = self.get_token()

        with Poller(self.daemon, "/v1/token?format=raw") as poller:
            headers = self.drip_until_timeout({"drip_s": DRIP_S}, "reading the reply headers")
            body = self.drip_until_timeout({"drip_s": DRIP_S, "drip_body_only": True},
                                           "reading the reply body")

        self.assertIn("HTTP 200, content type 'application/json'", body["message"])
        self.assertIn("body bytes received", body["message"])
        self.assertEqual(headers["kind"], "timeout")
        self.assertEqual({body for _, status, body in poller.replies}, {first})
        self.assertEqual(set(poller.statuses()), {200})
        self.assertLess(max(poller.durations), AT_ONCE_S)

        self.fake.reset()
        wait_until(lambda: self.get_token() != first, 5, "a new token once IAM is quick again")

    def drip_until_timeout(self, behaviour, phase):
        """Makes IAM drip; returns last_error once an attempt has timed out
        in `phase`, after checking how long that attempt took."""
        self.fake.set(**behaviour)
        since = time.time()
        says = f"request deadline of {REQUEST_S} s passed while {phase}"

        def timed_out():
            error = self.daemon.profile_status()["last_error"]
            return error if error and says in error["message"] else None

        error = wait_until(timed_out, 3 * REQUEST_S + 3, f"a timeout while {phase}")
        noticed = time.time()
        # The attempt that timed out is the last one IAM saw; a deadline per
        # read would never fire while a byte comes every second.
        took = noticed - requests_after(self.fake, since - REQUEST_S)[-1]["time"]
        self.assertGreater(took, REQUEST_S - DEADLINE_SLACK_S)
        self.assertLess(took, REQUEST_S + DEADLINE_SLACK_S)
        return error


if __name__ == "__main__":
    unittest.main()
