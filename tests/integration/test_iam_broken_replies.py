#!/usr/bin/env python3
"""Case 7, broken replies: bodies cut short (then a reset), a chunked body
without its last chunk, JSON cut inside the token, HTML labelled as JSON,
an 80 KB HTML 502, an IAM error JSON with status 500 and a 5 MB body. None
of them crashes the daemon or replaces the token it serves, and each is
logged with the status, content type, length and at most a short cleaned
excerpt of the body."""

import time
import unittest

from harness import IntegrationTest, wait_until
from iam_faults import log_lines

BIG_PAGE_BYTES = 80 * 1024
HUGE_BODY_BYTES = 5 * 1024 * 1024
# The daemon's limit on a reply body (common/https_client.hpp).
MAX_REPLY_BODY = 4 * 64 * 1024 + 64 * 1024
# A failure's log line quotes a short excerpt, never a whole body.
MAX_LOG_LINE = 600

# (name, fake behaviour, what last_error's message must contain)
BROKEN = (
    ("cut short then reset", {"bad_body": "reset"},
     ["while reading the reply body", "HTTP 200, content type 'application/json'",
      "Content-Length", "body bytes received"]),
    ("chunked without its last chunk", {"bad_body": "chunked_unfinished"},
     ["while reading the reply body", "HTTP 200", "body bytes received"]),
    ("JSON cut inside the token", {"bad_body": "cut_in_token"},
     ["not a JSON object", "content type 'application/json'", "[...]"]),
    ("HTML labelled as JSON", {"bad_body": "html"},
     ["not a JSON object", "content type 'application/json'", "starting '<html>"]),
    ("80 KB HTML 502", {"fail_status": 502, "fail_body": "html",
                        "fail_body_bytes": BIG_PAGE_BYTES},
     ["HTTP 502", "content type 'text/html'", f"{BIG_PAGE_BYTES} bytes",
      "starting '<html>"]),
    ("5 MB body", {"bad_body": "huge", "huge_bytes": HUGE_BODY_BYTES},
     [f"over the limit of {MAX_REPLY_BODY} bytes, not read", "HTTP 200",
      "Content-Length 52"]),
)


class BrokenRepliesTest(IntegrationTest):

    def test_broken_replies_never_replace_the_token(self):
        self.start_fake(token_life=60)
        # Refreshing starts about 3 s after the login and then retries.
        self.start_daemon(profile={"refresh": {"at_fraction": 0.05, "jitter_fraction": 0.01}})
        first = self.get_token()

        for name, behaviour, says in BROKEN:
            status = self.fail_with(behaviour, says[0])
            message = status["last_error"]["message"]
            for part in says:
                self.assertIn(part, message, name)
            self.assertEqual(self.get_token(), first, name)
            self.assertIsNone(self.daemon.proc.poll(), f"the daemon exited after: {name}")

        status = self.fail_with({"fail_status": 500, "fail_body": {
            "errorCode": "BXNIM0002E", "errorMessage": "Internal error."}}, "Internal error.")
        self.assertEqual(status["last_error"]["error_code"], "BXNIM0002E")
        self.assertEqual(status["last_error"]["http_status"], 500)
        self.assertEqual(self.get_token(), first)

        failures = log_lines(self.daemon, "grant failed")
        self.assertGreaterEqual(len(failures), len(BROKEN))
        self.assertLess(max(len(line) for line in failures), MAX_LOG_LINE)
        self.assertNotIn("ppppppppppppppppppppppp", self.daemon.read_log())
        self.assertNotIn("Please try again later", self.daemon.read_log())

        self.fake.reset()
        wait_until(lambda: self.get_token() != first, 5, "a new token once IAM recovers")

    def fail_with(self, behaviour, says):
        """Makes IAM answer with `behaviour`; returns the status once an
        attempt has failed with a message containing `says`."""
        failures = self.daemon.profile_status()["counters"]["failures"]
        self.fake.reset()
        self.fake.set(**behaviour)

        def failed():
            status = self.daemon.profile_status()
            error = status["last_error"]
            if status["counters"]["failures"] > failures and says in error["message"]:
                return status
            return None

        return wait_until(failed, 8, f"an attempt failing with {says!r}")


if __name__ == "__main__":
    unittest.main()
