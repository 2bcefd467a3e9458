#!/usr/bin/env python3
"""The files in systemd/: both units pass `systemd-analyze verify`, the
service's exposure in `systemd-analyze security --offline=true` is at most
1.5, the units carry the settings the daemon relies on, and the sysusers.d
and tmpfiles.d files do what they say when applied to a scratch root."""

import os
import re
import shutil
import stat
import subprocess
import tempfile
import unittest

from harness import REPO, daemon_binary

UNITS = os.path.join(REPO, "systemd")
SERVICE = "iam-tokend.service"
SOCKET = "iam-tokend.socket"
INSTALLED_BINARY = "/usr/bin/iam-tokend"
MAX_EXPOSURE = 1.5
TOOL_TIMEOUT_S = 60
DEFAULT_SOCKET_PATH = "/run/iam-tokend/tokend.sock"


def tool(name):
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"{name} not found: install Debian's systemd package "
                             "(scripts/lib.sh lists it)")
    return path


def run(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S,
                          stdin=kwargs.pop("stdin", subprocess.DEVNULL), **kwargs)


def unit_settings(path):
    """{(section, key): [values]} of a unit file; repeated keys keep every value."""
    settings = {}
    section = None
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            key, _, value = line.partition("=")
            settings.setdefault((section, key.strip()), []).append(value.strip())
    return settings


class SystemdUnitsTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="iam-tokend-units-", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def copy_units(self):
        """The units in a scratch folder, ExecStart pointing at the built
        binary: verify checks that the program exists."""
        with open(os.path.join(UNITS, SERVICE), encoding="utf-8") as f:
            service = f.read()
        self.assertIn(f"ExecStart={INSTALLED_BINARY} ", service)
        with open(os.path.join(self.tmp, SERVICE), "w", encoding="utf-8") as f:
            f.write(service.replace(f"ExecStart={INSTALLED_BINARY} ",
                                    f"ExecStart={daemon_binary()} "))
        shutil.copy(os.path.join(UNITS, SOCKET), self.tmp)

    def test_units_verify(self):
        self.copy_units()
        result = run([tool("systemd-analyze"), "verify", SERVICE, SOCKET], cwd=self.tmp)
        output = (result.stdout + result.stderr).strip()
        self.assertEqual(result.returncode, 0, output)
        self.assertEqual(output, "", "systemd-analyze verify has remarks")

    def test_exposure_is_at_most_1_5(self):
        result = run([tool("systemd-analyze"), "security", "--offline=true",
                      os.path.join(UNITS, SERVICE)])
        match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
        self.assertIsNotNone(match, result.stdout + result.stderr)
        exposure = float(match.group(1))
        print(f"\nsystemd-analyze security --offline=true {SERVICE}: exposure {exposure}")
        for line in result.stdout.splitlines():
            if line.startswith("✗"):
                print("  " + " ".join(line.split()))
        self.assertLessEqual(exposure, MAX_EXPOSURE)

    def test_service_has_what_the_daemon_relies_on(self):
        settings = unit_settings(os.path.join(UNITS, SERVICE))
        expected = {
            "Type": "notify",
            "ExecReload": "/bin/kill -HUP $MAINPID",
            "Restart": "on-failure",
            "User": "iam-tokend",
            "SupplementaryGroups": "iam-token",
            "RuntimeDirectory": "iam-tokend",
            "RuntimeDirectoryPreserve": "yes",
            "StateDirectory": "iam-tokend",
            "ConfigurationDirectory": "iam-tokend",
            "LoadCredential": "apikey:/etc/iam-tokend/apikey",
        }
        for key, value in expected.items():
            self.assertEqual(settings.get(("Service", key)), [value], key)
        self.assertRegex(settings[("Service", "WatchdogSec")][0], r"^[0-9]+s$")
        self.assertTrue(settings[("Service", "ExecStart")][0].startswith(
            f"{INSTALLED_BINARY} run -c /etc/iam-tokend/config.json"))
        # The daemon never says READY=1 later than its default startup_timeout_s.
        self.assertGreater(int(settings[("Service", "TimeoutStartSec")][0].rstrip("s")), 30)

    def test_socket_is_the_default_path_for_the_client_group(self):
        settings = unit_settings(os.path.join(UNITS, SOCKET))
        self.assertEqual(settings[("Socket", "ListenStream")], [DEFAULT_SOCKET_PATH])
        self.assertEqual(settings[("Socket", "SocketMode")], ["0660"])
        self.assertEqual(settings[("Socket", "SocketGroup")], ["iam-token"])
        self.assertEqual(settings[("Install", "WantedBy")], ["sockets.target"])

    def test_sysusers_makes_the_user_and_the_client_group(self):
        root = os.path.join(self.tmp, "root")
        os.makedirs(os.path.join(root, "etc"))
        with open(os.path.join(UNITS, "sysusers.d", "iam-tokend.conf"), "rb") as conf:
            result = run([tool("systemd-sysusers"), f"--root={root}", "-"], stdin=conf)
        self.assertEqual(result.returncode, 0, result.stderr)

        with open(os.path.join(root, "etc", "passwd"), encoding="utf-8") as f:
            users = {line.split(":")[0]: line.strip().split(":") for line in f}
        with open(os.path.join(root, "etc", "group"), encoding="utf-8") as f:
            groups = {line.split(":")[0] for line in f}
        self.assertIn("iam-tokend", users)
        self.assertEqual(users["iam-tokend"][6], "/usr/sbin/nologin")
        self.assertNotEqual(users["iam-tokend"][2], "0")
        self.assertLessEqual({"iam-token", "iam-tokend"}, groups)

    def test_tmpfiles_tightens_the_api_key(self):
        root = os.path.join(self.tmp, "root")
        key = os.path.join(root, "etc", "iam-tokend", "apikey")
        os.makedirs(os.path.dirname(key))
        with open(key, "w", encoding="utf-8") as f:
            f.write("not-a-real-key\n")
        os.chmod(key, 0o644)

        with open(os.path.join(UNITS, "tmpfiles.d", "iam-tokend.conf"), "rb") as conf:
            result = run([tool("systemd-tmpfiles"), f"--root={root}", "--create", "-"],
                         stdin=conf)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(stat.S_IMODE(os.stat(key).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(key)).st_mode), 0o755)


if __name__ == "__main__":
    unittest.main()
