#!/usr/bin/env python3
"""Case 2, single flight both ways: 200 clients at once cause one request to
IAM, whether they wait for the first login or arrive while a refresh of a
still-valid token is held up."""

import time
import unittest

from harness import IntegrationTest, wait_until
from iam_faults import concurrent_gets

CLIENTS = 200
LOGIN_HOLD_S = 3
REFRESH_HOLD_S = 5
# Everyone answered after the hold, within this much more.
REPLY_SLACK_S = 2.0
# "Answered at once" while a refresh is held up.
AT_ONCE_S = 1.0
# "All get the same 503 at once": the replies land within this of each other.
SAME_MOMENT_S = 0.5


class SingleFlightTest(IntegrationTest):

    def test_cold_start_one_login_for_all(self):
        self.start_fake()
        self.fake.set(delay_s=LOGIN_HOLD_S)
        self.start_daemon()

        replies = concurrent_gets(self.daemon.socket_path, "/v1/token?format=raw", CLIENTS)

        self.assertEqual([r for r in replies if r.status != 200], [])
        tokens = {r.body for r in replies}
        self.assertEqual(len(tokens), 1, "clients got different tokens")
        self.assert_issued(tokens.pop().decode())
        self.assertEqual(len(self.fake.token_requests()), 1)
        self.assertLess(max(r.elapsed for r in replies), LOGIN_HOLD_S + REPLY_SLACK_S)

    def test_cold_start_failed_login_fails_everyone_at_once(self):
        self.start_fake()
        self.fake.set(delay_s=LOGIN_HOLD_S, fail_status=503)
        # A long backoff: no second attempt can hide a missing 503.
        self.start_daemon(profile={"refresh": {"backoff_initial_s": 8, "backoff_max_s": 10}})

        started = time.monotonic()
        replies = concurrent_gets(self.daemon.socket_path, "/v1/token?wait=10", CLIENTS)

        self.assertEqual({r.status for r in replies}, {503})
        self.assertEqual(len({r.body for r in replies}), 1, "clients got different 503s")
        self.assertIn(b'"token_unavailable"', replies[0].body)
        self.assertTrue(all(int(r.headers["retry-after"]) >= 1 for r in replies))
        ends = [r.elapsed for r in replies]
        self.assertLess(max(ends) - min(ends), SAME_MOMENT_S)
        self.assertLess(time.monotonic() - started, LOGIN_HOLD_S + REPLY_SLACK_S)
        self.assertEqual(len(self.fake.token_requests()), 1)

    def test_held_refresh_does_not_hold_clients(self):
        self.start_fake(token_life=30)
        # The refresh is due about 3 s after the login.
        self.start_daemon(profile={"refresh": {"at_fraction": 0.1, "jitter_fraction": 0.01},
                                   "timeouts": {"request_s": REFRESH_HOLD_S * 2}})
        first = self.get_token()
        self.fake.set(delay_s=REFRESH_HOLD_S)
        wait_until(lambda: self.daemon.profile_status()["state"] == "refreshing", 10,
                   "the refresh to start")

        replies = concurrent_gets(self.daemon.socket_path, "/v1/token?format=raw", CLIENTS)

        self.assertEqual([r for r in replies if r.status != 200], [])
        self.assertEqual({r.body.decode() for r in replies}, {first})
        self.assertLess(max(r.elapsed for r in replies), AT_ONCE_S)
        self.assertEqual(self.daemon.profile_status()["state"], "refreshing")

        wait_until(lambda: self.daemon.profile_status()["state"] == "valid",
                   REFRESH_HOLD_S + REPLY_SLACK_S, "the refresh to finish")
        self.assertNotEqual(self.get_token(), first)
        grants = [r["grant_type"] for r in self.fake.token_requests()]
        self.assertEqual(len(grants), 2, grants)
        self.assertEqual(grants[1], "refresh_token")


if __name__ == "__main__":
    unittest.main()
