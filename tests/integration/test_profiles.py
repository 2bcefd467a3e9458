#!/usr/bin/env python3
"""Several profiles in one daemon, each against its own IAM: while one IAM
hangs on every request, the other profile keeps refreshing on schedule and
its clients are answered at once."""

import time
import unittest

from harness import IntegrationTest

TOKEN_LIFE_S = 4.0
AT_FRACTION = 0.8
JITTER_FRACTION = 0.05
MIN_VALID_S = 0.5
# The failing IAM holds each request far longer than the profile's deadline.
HANG_S = 30
BAD_REQUEST_TIMEOUT_S = 2
WATCH_S = 11
MIN_REFRESHES = 3
# Room for the exchange itself and a loaded test machine.
SCHEDULE_SLACK_S = 0.6
FAST_REPLY_S = 0.5
POLL_INTERVAL_S = 0.1


class ProfilesTest(IntegrationTest):

    def test_a_failing_profile_never_delays_another(self):
        good = self.start_fake(token_life=TOKEN_LIFE_S)
        bad = self.start_extra_fake("bad-iam")
        bad.set(delay_s=HANG_S)

        refresh = {"at_fraction": AT_FRACTION, "jitter_fraction": JITTER_FRACTION,
                   "min_valid_s": MIN_VALID_S, "backoff_initial_s": 0.2,
                   "backoff_max_s": 1}
        profiles = {
            "default": None,
            "good": {"iam_url": good.token_url, "api_key_file": self.api_key_file,
                     "ca_file": self.pki["ca"], "refresh": refresh},
            "bad": {"iam_url": bad.token_url, "api_key_file": self.api_key_file,
                    "ca_file": self.pki["ca"], "refresh": refresh,
                    "timeouts": {"connect_s": 1, "request_s": BAD_REQUEST_TIMEOUT_S}},
        }
        self.start_daemon(top={"profiles": profiles, "default_profile": "good"})

        self.watch_clients()
        self.check_refresh_schedule(good)
        self.check_health_and_status()

    def watch_clients(self):
        """Both ways to ask for the good profile answer fast, all along."""
        end = time.monotonic() + WATCH_S
        while time.monotonic() < end:
            for target in ("/v1/token", "/v1/token/good"):
                started = time.monotonic()
                reply = self.daemon.get(target)
                took = time.monotonic() - started
                self.assertEqual(reply.status, 200, reply)
                self.assertEqual(reply.json()["profile"], "good")
                self.assert_issued(reply.json()["access_token"])
                self.assertLess(took, FAST_REPLY_S, f"{target} took {took:.2f} s")
            time.sleep(POLL_INTERVAL_S)

        reply = self.daemon.get("/v1/token/bad?wait=0")
        self.assertEqual(reply.status, 503, reply)
        self.assertEqual(reply.json()["error"], "token_unavailable")
        reply = self.daemon.get("/v1/token/nobody")
        self.assertEqual(reply.status, 404, reply)
        self.assertEqual(reply.json()["error"], "unknown_profile")

    def check_refresh_schedule(self, good):
        """Each new token of the good profile came when its schedule said."""
        answered = [r["time"] for r in good.token_requests() if r["status"] == 200]
        self.assertGreaterEqual(len(answered) - 1, MIN_REFRESHES,
                                f"only {len(answered)} tokens in {WATCH_S} s")
        earliest = TOKEN_LIFE_S * (AT_FRACTION - JITTER_FRACTION)
        latest = TOKEN_LIFE_S * (AT_FRACTION + JITTER_FRACTION) + SCHEDULE_SLACK_S
        gaps = [later - earlier for earlier, later in zip(answered, answered[1:])]
        for gap in gaps:
            self.assertGreaterEqual(gap, earliest - SCHEDULE_SLACK_S, f"gaps: {gaps}")
            self.assertLessEqual(gap, latest, f"gaps: {gaps}")

    def check_health_and_status(self):
        health = self.daemon.get("/v1/health")
        self.assertEqual(health.status, 503, health)
        self.assertEqual(health.json()["profiles"], ["bad"])

        status = self.daemon.status()
        self.assertEqual(status["default_profile"], "good")
        self.assertEqual(sorted(status["profiles"]), ["bad", "good"])
        self.assertIn(status["profiles"]["good"]["state"], ("valid", "refreshing"))
        self.assertEqual(status["profiles"]["good"]["consecutive_failures"], 0)
        self.assertEqual(status["profiles"]["bad"]["state"], "starting")
        self.assertGreaterEqual(status["profiles"]["bad"]["consecutive_failures"], 2)
        self.assertEqual(status["profiles"]["bad"]["last_error"]["kind"], "timeout")


if __name__ == "__main__":
    unittest.main()
