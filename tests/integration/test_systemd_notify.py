#!/usr/bin/env python3
"""The sd_notify protocol, against a real AF_UNIX datagram socket passed as
NOTIFY_SOCKET: READY=1 after the first token or after startup_timeout_s,
STATUS= lines, watchdog pings at half WATCHDOG_USEC from the daemon itself,
RELOADING=1/READY=1 around SIGHUP and STOPPING=1 on SIGTERM."""

import signal
import statistics
import time
import unittest

from harness import IntegrationTest, NotifySocket, reserve_port

# The fake holds its first reply this long, so READY=1 cannot be early
# by accident.
IAM_DELAY_S = 1.0
STARTUP_TIMEOUT_S = 1.5
# How late a notification may arrive on a loaded two-core machine.
SLACK_S = 2.0
WATCHDOG_USEC = 600_000
WATCHDOG_PERIOD_S = WATCHDOG_USEC / 1e6 / 2
WATCHDOG_WATCH_S = 3.0
EXIT_TIMEOUT_S = 5
# A token the daemon refreshes after 2 s.
EARLY_REFRESH_LIFE_S = 20.0
EARLY_REFRESH_FRACTION = 0.1


class SystemdNotifyTest(IntegrationTest):

    def setUp(self):
        super().setUp()
        self.notify = NotifySocket(self.tmp)
        self.addCleanup(self.notify.close)

    def start_notified_daemon(self, env=None, **kwargs):
        started = time.monotonic()
        self.start_daemon(env=env or self.notify.env(), **kwargs)
        return started

    def test_ready_after_the_first_token_with_its_status(self):
        self.start_fake()
        self.fake.set(delay_s=IAM_DELAY_S)
        started = self.start_notified_daemon()

        at, pid, fields, _ = self.notify.wait_for("READY", "1")
        self.assertEqual(pid, self.daemon.proc.pid, "READY=1 from another process")
        self.assertGreaterEqual(at - started, IAM_DELAY_S,
                                "READY=1 came before IAM could have answered")
        self.assertEqual(len(self.fake.issued()["access_tokens"]), 1)

        fingerprint = self.daemon.profile_status()["token_fingerprint"]
        self.assertRegex(fields.get("STATUS", ""),
                         rf"^default: token {fingerprint} expires "
                         r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")
        self.notify.drain(0.5)
        self.assertEqual(len(self.notify.with_field("READY")), 1, "READY=1 sent twice")
        self.assertEqual(self.notify.with_field("WATCHDOG"), [],
                         "watchdog pings without WATCHDOG_USEC")

    def test_ready_after_startup_timeout_when_iam_is_down(self):
        port, reserved = reserve_port()
        self.addCleanup(reserved.close)
        started = self.start_notified_daemon(
            token_url=f"https://127.0.0.1:{port}/identity/token",
            top={"startup_timeout_s": STARTUP_TIMEOUT_S})

        at, _, fields, _ = self.notify.wait_for("READY", "1",
                                                timeout=STARTUP_TIMEOUT_S + SLACK_S)
        self.assertGreaterEqual(at - started, STARTUP_TIMEOUT_S - 0.1,
                                "READY=1 before startup_timeout_s without a token")
        status = fields.get("STATUS", "")
        self.assertIn("startup timeout passed without a token for every profile", status)
        self.assertRegex(status, r"default: no token \(network: ")
        self.assertIsNone(self.daemon.proc.poll(), "the daemon exited")
        self.assertEqual(self.daemon.get("/v1/health").status, 503)

    def test_status_follows_a_failing_refresh(self):
        self.start_fake(token_life=EARLY_REFRESH_LIFE_S)
        self.start_notified_daemon(profile={"refresh": {"at_fraction": EARLY_REFRESH_FRACTION,
                                                        "jitter_fraction": 0}})
        self.notify.wait_for("READY", "1")

        self.fake.set(fail_status=503, fail_count=-1)
        refresh_at = EARLY_REFRESH_LIFE_S * EARLY_REFRESH_FRACTION
        _, _, fields, _ = self.notify.wait_for("STATUS", timeout=refresh_at + SLACK_S)
        self.assertRegex(fields["STATUS"],
                         r"^default: token [0-9a-f]{4} expires .* UTC, refresh failing \(")
        self.assertIn("HTTP 503", fields["STATUS"])

    def test_watchdog_pings_at_half_the_period_from_the_main_process(self):
        self.start_fake()
        self.start_notified_daemon(env=self.notify.env(WATCHDOG_USEC=str(WATCHDOG_USEC)))
        self.notify.wait_for("READY", "1")

        self.notify.messages.clear()
        self.notify.drain(WATCHDOG_WATCH_S)
        pings = [m for m in self.notify.with_field("WATCHDOG") if m[2]["WATCHDOG"] == "1"]
        self.assertTrue(all(m[1] == self.daemon.proc.pid for m in pings))
        expected = WATCHDOG_WATCH_S / WATCHDOG_PERIOD_S
        self.assertGreaterEqual(len(pings), expected * 0.7, f"too few pings: {len(pings)}")
        self.assertLessEqual(len(pings), expected * 1.3 + 1, f"too many pings: {len(pings)}")

        gaps = [b[0] - a[0] for a, b in zip(pings, pings[1:])]
        median = statistics.median(gaps)
        print(f"watchdog: {len(pings)} pings in {WATCHDOG_WATCH_S} s, median gap "
              f"{median:.3f} s, longest {max(gaps):.3f} s")
        self.assertAlmostEqual(median, WATCHDOG_PERIOD_S, delta=WATCHDOG_PERIOD_S * 0.25)
        self.assertLess(max(gaps), WATCHDOG_USEC / 1e6,
                        "a gap that would have let systemd's watchdog fire")

    def test_watchdog_stops_when_the_event_loop_stops(self):
        self.start_fake()
        self.start_notified_daemon(env=self.notify.env(WATCHDOG_USEC=str(WATCHDOG_USEC)))
        self.notify.wait_for("WATCHDOG", "1")

        # A stopped process stands in for a hung loop: no pings may follow.
        self.daemon.proc.send_signal(signal.SIGSTOP)
        self.addCleanup(self.daemon.proc.send_signal, signal.SIGCONT)
        self.notify.drain(WATCHDOG_PERIOD_S)
        self.notify.messages.clear()
        self.notify.drain(WATCHDOG_USEC / 1e6 * 2)
        self.assertEqual(self.notify.with_field("WATCHDOG"), [])

        self.daemon.proc.send_signal(signal.SIGCONT)
        self.notify.wait_for("WATCHDOG", "1", timeout=WATCHDOG_USEC / 1e6 + SLACK_S)

    def test_reloading_then_ready_around_sighup(self):
        self.start_fake()
        self.start_notified_daemon()
        self.notify.wait_for("READY", "1")

        before = time.monotonic()
        self.daemon.proc.send_signal(signal.SIGHUP)
        _, _, reloading, _ = self.notify.wait_for("RELOADING", "1", timeout=SLACK_S)
        monotonic_usec = int(reloading["MONOTONIC_USEC"])
        self.assertAlmostEqual(monotonic_usec / 1e6, before, delta=SLACK_S)
        _, _, ready, _ = self.notify.wait_for("READY", "1", timeout=SLACK_S)
        self.assertRegex(ready.get("STATUS", ""), r"^default: token [0-9a-f]{4} expires ")

    def test_stopping_on_sigterm(self):
        self.start_fake()
        self.start_notified_daemon()
        self.notify.wait_for("READY", "1")

        self.daemon.proc.send_signal(signal.SIGTERM)
        _, pid, _, _ = self.notify.wait_for("STOPPING", "1", timeout=SLACK_S)
        self.assertEqual(pid, self.daemon.proc.pid)
        self.assertEqual(self.daemon.proc.wait(EXIT_TIMEOUT_S), 0)


if __name__ == "__main__":
    unittest.main()
