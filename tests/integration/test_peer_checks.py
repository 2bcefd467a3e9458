#!/usr/bin/env python3
"""Peer checks: each profile's allow.uids / allow.gids, enforced with the
credentials the kernel gives for the connection (SO_PEERCRED, and
SO_PEERGROUPS for supplementary groups). Clients run as another user: the
test forks, drops the child to `nobody`, and has it ask for tokens. The
socket's mode and group come from the config.

These tests need root, to change user in the child. Without that they are
skipped, and the skip says so."""

import grp
import json
import os
import pwd
import re
import stat
import unittest

from harness import IntegrationTest, main, rewrite_config, unix_request

NOBODY = "nobody"
# A group `nobody` is not in, given to the child as a supplementary group.
EXTRA_GROUP = "daemon"


def nobody_ids():
    """(uid, gid, group name) of `nobody`, or None when there is no such user."""
    try:
        entry = pwd.getpwnam(NOBODY)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid, grp.getgrgid(entry.pw_gid).gr_name


def run_as(uid, gid, groups, action):
    """Forks, drops the child to uid, gid and supplementary groups, runs
    action() there and returns what it returned (through JSON), or
    {"error": ...} when dropping or the action failed."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)
            answer = {"pid": os.getpid(), "value": action()}
        except Exception as e:  # noqa: BLE001  (whatever it is goes to the parent)
            answer = {"error": repr(e)}
        os.write(write_end, json.dumps(answer).encode())
        os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    return json.loads(b"".join(chunks) or b'{"error": "the child wrote nothing"}')


def why_users_cannot_be_changed():
    """None if a forked child can become `nobody`, else the reason."""
    if nobody_ids() is None:
        return f"there is no user {NOBODY!r}"
    if os.geteuid() != 0:
        return f"the tests run as uid {os.geteuid()}, not root"
    uid, gid, _ = nobody_ids()
    answer = run_as(uid, gid, [], lambda: os.getuid())
    if answer.get("value") != uid:
        return f"a child cannot drop to {NOBODY}: {answer.get('error')}"
    return None


def request_as(uid, gid, groups, socket_path, target, method="GET"):
    """Sends the request as uid/gid/groups; returns (status, body, client pid)."""
    def request():
        reply = unix_request(socket_path, method, target)
        return {"status": reply.status, "body": reply.text}

    answer = run_as(uid, gid, groups, request)
    if "error" in answer:
        return None, answer["error"], None
    return answer["value"]["status"], answer["value"]["body"], answer["pid"]


class PeerChecksTest(IntegrationTest):

    @classmethod
    def setUpClass(cls):
        reason = why_users_cannot_be_changed()
        if reason is not None:
            print(f"\n*** SKIPPING the peer-check tests: {reason}. They need root to run a "
                  f"client as {NOBODY}. ***\n", flush=True)
            raise unittest.SkipTest(reason)
        cls.uid, cls.gid, cls.group = nobody_ids()
        cls.extra_gid = grp.getgrnam(EXTRA_GROUP).gr_gid

    def setUp(self):
        super().setUp()
        # nobody must be able to reach the socket inside the test folder.
        os.chmod(self.tmp, 0o711)
        self.start_fake()

    def start_with_profiles(self, allow_by_profile):
        """The daemon with one profile per entry, each with that allow list,
        and the socket given to nobody's group."""
        self.prepare_daemon(top={"socket": {"mode": "0660", "group": self.group}})

        def one_profile_each(config):
            template = config["profiles"]["default"]
            config["profiles"] = {name: dict(template, allow=allow)
                                  for name, allow in allow_by_profile.items()}

        rewrite_config(self.daemon.config_path, one_profile_each)
        self.daemon.start()

    def as_nobody(self, target, groups=(), method="GET"):
        return request_as(self.uid, self.gid, list(groups), self.daemon.socket_path, target,
                          method)

    def test_socket_mode_and_group_come_from_the_config(self):
        self.start_with_profiles({"default": {}})
        info = os.stat(self.daemon.socket_path)
        self.assertTrue(stat.S_ISSOCK(info.st_mode))
        self.assertEqual(stat.S_IMODE(info.st_mode), 0o660)
        self.assertEqual(info.st_gid, self.gid)

        status, body, _ = self.as_nobody("/v1/token")
        self.assertEqual(status, 200, body)

    def test_uid_allow_list(self):
        self.start_with_profiles({
            "default": {"uids": [0]},
            "for-nobody": {"uids": [self.uid]},
        })

        status, body, pid = self.as_nobody("/v1/token/default")
        self.assertEqual(status, 403, body)
        self.assertEqual(json.loads(body)["error"], "forbidden")
        self.assertIn(f"[profile default] refused a client: uid {self.uid} gid {self.gid} "
                      f"pid {pid} is not allowed", self.daemon.read_log())
        self.assertEqual(self.as_nobody("/v1/token/for-nobody")[0], 200)

        # The test itself runs as root: the other way round.
        self.assertEqual(self.daemon.get("/v1/token/default").status, 200)
        self.assertEqual(self.daemon.get("/v1/token/for-nobody").status, 403)

    def test_gid_allow_list_admits_primary_and_supplementary_groups(self):
        self.start_with_profiles({
            "default": {"gids": [self.gid]},
            "for-extra-group": {"gids": [self.extra_gid]},
        })

        self.assertEqual(self.as_nobody("/v1/token/default")[0], 200)
        status, body, pid = self.as_nobody("/v1/token/for-extra-group")
        self.assertEqual(status, 403, body)
        self.assertRegex(self.daemon.read_log(),
                         re.escape(f"[profile for-extra-group] refused a client: "
                                   f"uid {self.uid} gid {self.gid} pid {pid}"))

        status, body, _ = self.as_nobody("/v1/token/for-extra-group", [self.extra_gid])
        self.assertEqual(status, 200, body)

    def test_refresh_is_checked_too(self):
        self.start_with_profiles({"default": {"uids": [0]}})
        # The first login over (root may ask), so any later request is the refusal's.
        self.assert_issued(self.get_token())
        logins = len(self.fake.token_requests())

        status, body, _ = self.as_nobody("/v1/refresh/default", method="POST")
        self.assertEqual(status, 403, body)
        self.assertEqual(len(self.fake.token_requests()), logins,
                         "a refused client caused a refresh")


if __name__ == "__main__":
    main()
