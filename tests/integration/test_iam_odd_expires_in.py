#!/usr/bin/env python3
"""Case 5, odd numbers: expires_in as a JSON integer, a number with a
fraction (rounded down) or a string of digits is accepted; anything else,
a value outside 1 s .. 7 days, or a life not above min_valid_s, is an error
of that attempt that names the field and the JSON type it got, while the
token already held goes on being served."""

import re
import time
import unittest

from harness import IntegrationTest
from iam_faults import gaps, log_lines, requests_after, wait_until

ACCEPTED = (('"4"', 4), ("4.0", 4), ("4.9", 4))
MIN_VALID_S = 5
# Raw JSON sent as expires_in ("" leaves it out), and what the error says.
REFUSED = (
    ("0", "expires_in 0 (JSON type number) is outside 1 s .. 7 days"),
    ("-5", "expires_in -5 (JSON type number) is outside"),
    ("null", "expires_in has JSON type null, expected a number"),
    ("", "expires_in is missing"),
    ("1e30", "(JSON type number) is outside 1 s .. 7 days"),
    ("true", "expires_in has JSON type bool, expected a number"),
    ('"abc"', "expires_in has JSON type string but is not a whole number"),
    ('"3600.5"', "expires_in has JSON type string but is not a whole number"),
    ("3", f"token lives 3 s, not more than min_valid_s {MIN_VALID_S} s"),
)
# The retries while refused follow the backoff (its floor is 1 s).
MIN_GAP_S = 0.9


class OddExpiresInTest(IntegrationTest):

    def test_accepted_forms(self):
        self.start_fake()
        self.fake.set(expires_in_json=ACCEPTED[0][0])
        self.start_daemon(profile={"refresh": {"min_valid_s": 1}})
        seen = [self.token_with_life()]

        for raw, _ in ACCEPTED[1:]:
            self.fake.set(expires_in_json=raw)
            seen.append(wait_until(lambda: self.new_token_after(seen[-1][0]), 8,
                                   f"a token from a reply with expires_in {raw}"))

        for (raw, life), (token, expires_in) in zip(ACCEPTED, seen):
            self.assert_issued(token)
            self.assertLessEqual(expires_in, life, raw)
            self.assertGreaterEqual(expires_in, 1, raw)
        self.assertEqual(len(log_lines(self.daemon, r"new token \w+ .*valid for 4 s")), len(seen))

    def test_refused_forms_keep_the_token(self):
        self.start_fake(token_life=40)
        # The first refresh is due about 3 s after the login.
        self.start_daemon(profile={"refresh": {"min_valid_s": MIN_VALID_S, "at_fraction": 0.1,
                                               "jitter_fraction": 0.01}})
        first = self.get_token()
        started = time.time()

        for raw, says in REFUSED:
            failures = self.daemon.profile_status()["counters"]["failures"]
            self.fake.set(expires_in_json=raw)
            status = wait_until(lambda: self.next_failure(failures, says), 5,
                                f"an attempt refused for expires_in {raw!r}")
            self.assertEqual(status["last_error"]["kind"], "bad_response", raw)
            self.assertEqual(self.get_token(), first, raw)

        self.assertIsNone(self.daemon.proc.poll(), "the daemon exited")
        status = self.daemon.profile_status()
        self.assertEqual(status["state"], "degraded")
        self.assertGreaterEqual(status["consecutive_failures"], len(REFUSED))
        refused = requests_after(self.fake, started)
        self.assertTrue(all(gap >= MIN_GAP_S for gap in gaps(refused)), gaps(refused))
        for _, says in REFUSED:
            self.assertTrue(log_lines(self.daemon, "grant failed.*" + re.escape(says)), says)

        self.fake.set(expires_in_json=None)
        wait_until(lambda: self.get_token() != first, 5, "a token once IAM is sane again")

    def next_failure(self, failures_before, says):
        status = self.daemon.profile_status()
        error = status["last_error"]
        if status["counters"]["failures"] > failures_before and says in error["message"]:
            return status
        return None

    def token_with_life(self):
        reply = self.daemon.get("/v1/token")
        self.assertEqual(reply.status, 200, reply)
        return reply.json()["access_token"], reply.json()["expires_in"]

    def new_token_after(self, token):
        current = self.token_with_life()
        return current if current[0] != token else None


if __name__ == "__main__":
    unittest.main()
