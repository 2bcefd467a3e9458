#!/usr/bin/env python3
"""Log lines that fit journald: with JOURNAL_STREAM set (or log.format
"journal") each line starts with its syslog priority and has no timestamp;
otherwise each starts with a timestamp and the level's name. Lines about a
profile name it."""

import os
import re
import signal
import unittest

from harness import IntegrationTest, reserve_port, rewrite_config, wait_until

# What systemd puts in JOURNAL_STREAM: the device and inode of stderr.
JOURNAL_STREAM = "8:123456"
PRIORITY = re.compile(r"^<([0-7])>")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d")
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} "
                       r"(trace|debug|info|warning|error|critical) ")
LOG_WAIT_S = 5
# syslog priorities: error, warning, info, debug.
ERR, WARNING, INFO, DEBUG = "3", "4", "6", "7"


class JournalFormatTest(IntegrationTest):

    def start_with_every_level(self, env, log_format=None):
        """A daemon that logs at each level: info and debug as it starts, an
        error for a profile whose IAM is down, a warning for a rejected
        reload."""
        self.start_fake()
        port, reserved = reserve_port()
        self.addCleanup(reserved.close)
        self.prepare_daemon()

        def add_a_profile_whose_iam_is_down(config):
            config["profiles"]["down"] = dict(config["profiles"]["default"],
                                              iam_url=f"https://127.0.0.1:{port}/identity/token")
            config["log"] = {"level": "debug", "format": log_format or "auto"}

        rewrite_config(self.daemon.config_path, add_a_profile_whose_iam_is_down)

        self.daemon.start(env=env)
        self.assert_issued(self.get_token())
        wait_until(lambda: "[profile down]" in self.daemon.read_log()
                   and "grant failed" in self.daemon.read_log(),
                   LOG_WAIT_S, "the down profile's failure in the log")

        with open(self.daemon.config_path, "w", encoding="utf-8") as f:
            f.write("{ not json")
        self.daemon.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload rejected" in self.daemon.read_log(), LOG_WAIT_S,
                   "the rejected reload in the log")
        return self.daemon.read_log().splitlines()

    def assert_journal_lines(self, lines):
        self.assertTrue(lines)
        priorities = set()
        for line in lines:
            match = PRIORITY.match(line)
            self.assertIsNotNone(match, f"no priority prefix: {line!r}")
            self.assertIsNone(TIMESTAMP.search(line), f"a timestamp: {line!r}")
            priorities.add(match.group(1))
        self.assertLessEqual({ERR, WARNING, INFO, DEBUG}, priorities)

        by_text = {
            "new token": INFO,
            "reload rejected": WARNING,
            "no token to serve": ERR,
            "asking IAM for a token": DEBUG,
        }
        for text, priority in by_text.items():
            found = [line for line in lines if text in line]
            self.assertTrue(found, f"no line with {text!r}")
            self.assertTrue(all(line.startswith(f"<{priority}>") for line in found), found)

    def assert_profiles_named(self, lines):
        for line in lines:
            if "grant" in line or "new token" in line or "token source" in line:
                self.assertRegex(line, r"\[profile (default|down)\]")

    def test_priorities_and_no_timestamps_under_journal_stream(self):
        lines = self.start_with_every_level(dict(os.environ, JOURNAL_STREAM=JOURNAL_STREAM))
        self.assert_journal_lines(lines)
        self.assert_profiles_named(lines)

    def test_journal_format_from_the_config(self):
        env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
        self.assert_journal_lines(self.start_with_every_level(env, log_format="journal"))

    def test_timestamps_without_journal_stream(self):
        env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
        lines = self.start_with_every_level(env)
        for line in lines:
            self.assertRegex(line, TEXT_LINE)
            self.assertIsNone(PRIORITY.match(line))
        self.assert_profiles_named(lines)

    def test_text_format_from_the_config_wins_over_journal_stream(self):
        lines = self.start_with_every_level(dict(os.environ, JOURNAL_STREAM=JOURNAL_STREAM),
                                            log_format="text")
        for line in lines:
            self.assertRegex(line, TEXT_LINE)


if __name__ == "__main__":
    unittest.main()
