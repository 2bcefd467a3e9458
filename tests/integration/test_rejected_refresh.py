#!/usr/bin/env python3
"""When IAM rejects the refresh token, the daemon logs in with the API key
at once and keeps serving tokens."""

import time
import unittest

from harness import APIKEY_GRANT, IntegrationTest

TOKEN_LIFE_S = 4
POLL_INTERVAL_S = 0.1
# "At once": the fallback login follows the rejected refresh this quickly.
FALLBACK_DELAY_MAX_S = 2
# Long enough for at least two refreshes, due at about 80 % of the life.
WATCH_S = 10
# A rejected refresh costs two requests per token life; allow plenty more,
# but not a loop.
MAX_REQUESTS_WHILE_WATCHING = 20


class RejectedRefreshTest(IntegrationTest):

    def test_falls_back_to_apikey_login_and_keeps_serving(self):
        self.start_fake(token_life=TOKEN_LIFE_S)
        self.start_daemon()
        self.assert_issued(self.get_token())
        self.fake.set(reject_refresh=True)
        watch_start = time.time()

        self.poll_until(watch_start + WATCH_S)

        rejected = self.first_rejected_refresh()
        self.assertIsNotNone(rejected, "no refresh grant was rejected with 400")
        login = self.apikey_login_after(rejected["time"])
        self.assertIsNotNone(login, "no API-key login followed the rejected refresh")
        self.assertLess(login["time"] - rejected["time"], FALLBACK_DELAY_MAX_S)
        self.assertEqual(login["status"], 200)

        requests_seen = [r for r in self.fake.token_requests()
                         if r["time"] >= watch_start]
        self.assertLessEqual(len(requests_seen), MAX_REQUESTS_WHILE_WATCHING)

        # The token served now comes from a login made after the rejection.
        served = self.get_token()
        details = self.fake.issued()["access_token_details"]
        source = next(d for d in details if d["token"] == served)
        self.assertGreater(source["issued_at"], rejected["time"])
        self.assertEqual(source["grant_type"], "apikey")

    def first_rejected_refresh(self):
        for request in self.fake.grants("refresh_token"):
            if request["status"] == 400:
                return request
        return None

    def apikey_login_after(self, moment):
        for request in self.fake.grants(APIKEY_GRANT):
            if request["time"] > moment:
                return request
        return None

    def poll_until(self, end):
        """Every poll gets an issued, unexpired token."""
        while time.time() < end:
            reply = self.daemon.get("/v1/token")
            replied_at = time.time()
            self.assertEqual(reply.status, 200, reply)
            token = reply.json()["access_token"]
            details = self.fake.issued()["access_token_details"]
            detail = next((d for d in details if d["token"] == token), None)
            self.assertIsNotNone(detail, f"token ...{token[-8:]} was not issued")
            self.assertLess(replied_at, detail["expires_at"])
            time.sleep(POLL_INTERVAL_S)


if __name__ == "__main__":
    unittest.main()
