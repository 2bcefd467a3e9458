#!/usr/bin/env python3
"""Case 9, 429 and Retry-After: the daemon makes no attempt before the time
IAM asked for, whether Retry-After is given in seconds or as an HTTP date;
an absurd one is clamped to 600 s with a log line; a 429 without the
header follows the backoff; a 429 is transient (the refresh token is
kept); a 503 to a client carries a Retry-After that covers the wait."""

import time
import unittest

from harness import APIKEY_GRANT, IntegrationTest, wait_until
from iam_faults import log_lines, wait_for_request

ASKED_S = 3
# The daemon's ceiling on Retry-After (daemon/schedule.hpp).
RETRY_AFTER_CEILING_S = 600
# An HTTP date has whole seconds, so the wait it asks for may be this much
# shorter than the seconds the fake meant.
DATE_ROUNDING_S = 1.0
# The backoff's floor: no attempt follows a failure sooner.
MIN_GAP_S = 0.95


class RetryAfterTest(IntegrationTest):

    def test_seconds(self):
        self.start_fake()
        self.fake.set(fail_status=429, fail_count=1, retry_after=str(ASKED_S))
        self.start_daemon()

        first = wait_for_request(self.fake, 0, "the first login")
        reply = self.daemon.get("/v1/token?wait=0")
        self.assertEqual(reply.status, 503, reply)
        self.assertGreaterEqual(int(reply.headers["Retry-After"]),
                                ASKED_S - (time.time() - first["time"]) - 0.5)

        second = wait_for_request(self.fake, first["time"], "the retry", status=200)
        self.assertGreaterEqual(second["time"] - first["time"], ASKED_S)
        self.assert_issued(self.get_token())

    def test_http_date(self):
        self.start_fake()
        self.fake.set(fail_status=429, fail_count=1, retry_after_date_s=ASKED_S + 1)
        self.start_daemon()

        first = wait_for_request(self.fake, 0, "the first login")
        second = wait_for_request(self.fake, first["time"], "the retry", status=200)
        self.assertGreaterEqual(second["time"] - first["time"], ASKED_S + 1 - DATE_ROUNDING_S)
        self.assert_issued(self.get_token())

    def test_absurd_retry_after_is_clamped(self):
        self.start_fake()
        self.fake.set(fail_status=429, retry_after="86400")
        self.start_daemon()

        wait_for_request(self.fake, 0, "the first login")
        status = wait_until(lambda: self.failed_status(), 5, "the failure in /v1/status")
        self.assertGreater(status["next_refresh_in"], RETRY_AFTER_CEILING_S - 10)
        self.assertLessEqual(status["next_refresh_in"], RETRY_AFTER_CEILING_S)
        self.assertEqual(len(log_lines(self.daemon, "IAM asked to wait 86400 s \\(Retry-After\\); "
                                                    "waiting 600 s at most")), 1)
        reply = self.daemon.get("/v1/token?wait=1")
        self.assertEqual(reply.status, 503)
        self.assertGreater(int(reply.headers["Retry-After"]), RETRY_AFTER_CEILING_S - 10)
        time.sleep(2)
        self.assertEqual(len(self.fake.token_requests()), 1)

    def test_429_without_header_keeps_the_refresh_token(self):
        self.start_fake(token_life=3)
        self.start_daemon()
        self.get_token()
        login = self.fake.token_requests()[0]
        self.fake.set(fail_status=429, fail_count=1)

        refused = wait_for_request(self.fake, login["time"], "a refresh refused with 429",
                                   status=429)
        retried = wait_for_request(self.fake, refused["time"], "the retry after the 429")

        self.assertEqual(refused["grant_type"], "refresh_token")
        self.assertEqual(retried["grant_type"], "refresh_token")
        self.assertEqual(retried["status"], 200)
        self.assertEqual(retried["refresh_token_sha256"], refused["refresh_token_sha256"])
        self.assertGreaterEqual(retried["time"] - refused["time"], MIN_GAP_S)
        logins = [r for r in self.fake.token_requests() if r["grant_type"] == APIKEY_GRANT]
        self.assertEqual(len(logins), 1)

    def failed_status(self):
        status = self.daemon.profile_status()
        return status if status["last_error"] else None


if __name__ == "__main__":
    unittest.main()
