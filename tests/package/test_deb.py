#!/usr/bin/env python3
"""The Debian package: built with cpack from the build folder
($IAM_TOKEND_BUILD_DIR), checked for its fields and contents, installed with
dpkg -i, run (--version, and check-config on the installed example config
and on the package's /etc/iam-tokend/config.json), and purged again.

dpkg -i needs root and a system where iam-tokend is not installed already
(a real installation is never touched); a lock file in /tmp makes test runs
on one machine take turns. Otherwise the package is unpacked with dpkg -x
into a temporary root and the same checks run there; the test says so on
stderr.

Both configs name the API key at /etc/iam-tokend/apikey: the example as
api_key_file, the package's config as the systemd credential "apikey"
(checked with CREDENTIALS_DIRECTORY=/etc/iam-tokend, as the README says).
check-config first runs without that file and must report it as the only
problem; then the test writes a dummy key there (mode 0600), expects both
configs to pass, and removes it again. An existing key file is left alone,
and the configs must pass with it. In the dpkg -x case the dummy key goes
into the temporary root instead.
"""

import fcntl
import glob
import grp
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PACKAGE = "iam-tokend"
BINARY = "/usr/bin/iam-tokend"
CONFIG = "/etc/iam-tokend/config.json"
EXAMPLE = "/usr/share/doc/iam-tokend/examples/iam-tokend.example.json"
KEY_DIR = "/etc/iam-tokend"
KEY_FILE = "/etc/iam-tokend/apikey"
SERVICE_USER = "iam-tokend"
CLIENT_GROUP = "iam-token"
UNIT_SUFFIXES = (".service", ".socket", ".timer", ".path")
COMMAND_TIMEOUT_S = 240
DPKG_LOCK_RETRIES = 30
DPKG_LOCK_WAIT_S = 2.0
TEST_LOCK = "/tmp/iam-tokend-deb-test.lock"
TEST_LOCK_TIMEOUT_S = 200


def run(argv, env=None):
    return subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
                          stdin=subprocess.DEVNULL, env=env)


def dpkg(*args):
    """dpkg, waiting for the lock that another package tool may hold."""
    for _ in range(DPKG_LOCK_RETRIES):
        result = run(["dpkg", *args])
        if result.returncode == 0 or "lock" not in result.stderr:
            return result
        time.sleep(DPKG_LOCK_WAIT_S)
    return result


def installed():
    result = run(["dpkg-query", "-W", "-f=${Status}", PACKAGE])
    return result.returncode == 0 and result.stdout.endswith(" installed")


def expected_paths():
    """Every path the package must hold, from what the source tree has."""
    paths = {"." + BINARY, "." + CONFIG, "." + EXAMPLE,
             "./usr/share/doc/iam-tokend/README.md"}
    systemd = os.path.join(REPO, "systemd")
    for name in os.listdir(systemd):
        if name.endswith(UNIT_SUFFIXES):
            paths.add(f"./usr/lib/systemd/system/{name}")
    for kind in ("sysusers.d", "tmpfiles.d"):
        for path in glob.glob(os.path.join(systemd, kind, "*.conf")):
            paths.add(f"./usr/lib/{kind}/{os.path.basename(path)}")
    return paths


def exists(name, lookup):
    try:
        lookup(name)
        return True
    except KeyError:
        return False


class DebPackageTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        build = os.environ.get("IAM_TOKEND_BUILD_DIR") or os.path.join(REPO, "build")
        cls.tmp = tempfile.mkdtemp(prefix="iam-tokend-deb-", dir="/tmp")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, ignore_errors=True)
        result = run(["cpack", "-G", "DEB", "--config",
                      os.path.join(build, "CPackConfig.cmake"), "-B", cls.tmp])
        if result.returncode != 0:
            raise AssertionError(f"cpack failed:\n{result.stdout}\n{result.stderr}")
        [cls.deb] = glob.glob(os.path.join(cls.tmp, "*.deb"))
        binary = os.path.join(build, "daemon", "iam-tokend")
        cls.version = run([binary, "--version"]).stdout.split()[-1]

    def field(self, name):
        return run(["dpkg-deb", "-f", self.deb, name]).stdout.strip()

    def test_control_fields(self):
        self.assertEqual(self.field("Package"), PACKAGE)
        self.assertEqual(self.field("Version"), self.version)
        depends = self.field("Depends")
        for library in ("libssl3", "libc6", "libstdc++6", "libsystemd0"):
            self.assertIn(library, depends)
        conffiles = run(["dpkg-deb", "-I", self.deb, "conffiles"]).stdout.split()
        self.assertEqual(conffiles, [CONFIG])

    def test_contents(self):
        listing = run(["dpkg-deb", "-c", self.deb]).stdout
        paths = {line.split()[-1] for line in listing.splitlines()}
        missing = expected_paths() - paths
        self.assertEqual(missing, set(), f"not in the package:\n{listing}")
        binary = [line for line in listing.splitlines() if line.endswith(BINARY)]
        self.assertTrue(binary[0].startswith("-rwxr-xr-x root/root"), binary)

    def test_install_run_and_remove(self):
        self.take_test_lock()
        reason = self.why_not_dpkg_install()
        if reason is None:
            self.install_and_check()
        else:
            sys.stderr.write(f"\ndpkg -i is not possible here ({reason}); checking the "
                             f"package unpacked with dpkg -x instead\n")
            self.unpack_and_check()

    def take_test_lock(self):
        lock = open(TEST_LOCK, "a", encoding="ascii")  # closed, and so freed, at clean-up
        self.addCleanup(lock.close)
        deadline = time.monotonic() + TEST_LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise AssertionError(f"{TEST_LOCK} stayed locked for "
                                         f"{TEST_LOCK_TIMEOUT_S} s") from None
                time.sleep(DPKG_LOCK_WAIT_S)

    def why_not_dpkg_install(self):
        if os.geteuid() != 0:
            return "not root"
        if shutil.which("dpkg") is None:
            return "no dpkg"
        if installed():
            return f"{PACKAGE} is installed on this system already"
        return None

    # --- installed in the system --------------------------------------

    def install_and_check(self):
        result = dpkg("-i", self.deb)
        self.addCleanup(self.purge)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(installed())

        self.check_version(BINARY)
        if shutil.which("systemd-sysusers"):
            self.assertTrue(exists(SERVICE_USER, pwd.getpwnam), "postinst made no user")
            self.assertTrue(exists(CLIENT_GROUP, grp.getgrnam), "postinst made no group")
        self.check_configs(BINARY, "", KEY_DIR)

    def purge(self):
        result = dpkg("--purge", PACKAGE)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertFalse(installed())
        self.assertFalse(os.path.exists(BINARY))
        self.assertFalse(os.path.exists(CONFIG))

    # --- unpacked into a temporary root -------------------------------

    def unpack_and_check(self):
        root = os.path.join(self.tmp, "root")
        result = run(["dpkg-deb", "-x", self.deb, root])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.check_version(root + BINARY)
        self.check_configs(root + BINARY, root, root + KEY_DIR)

    # --- shared checks ------------------------------------------------

    def check_version(self, binary):
        result = run([binary, "--version"])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.strip(), f"{PACKAGE} {self.version}")

    def check_configs(self, binary, root, key_dir):
        """Both configs: only the key missing, then valid once it is there.
        The example names /etc/iam-tokend/apikey itself, so under a
        temporary root it can only be checked for that one problem."""
        key_file = os.path.join(key_dir, "apikey")
        example, config = root + EXAMPLE, root + CONFIG
        credentials = dict(os.environ, CREDENTIALS_DIRECTORY=key_dir)
        if not os.path.exists(key_file):
            self.assert_only_problem(run([binary, "check-config", "-c", config], credentials),
                                     config, "api_key_credential", "apikey")
            self.write_dummy_key(key_file)
        self.assert_valid(run([binary, "check-config", "-c", config], credentials))

        example_check = run([binary, "check-config", "-c", example])
        if os.path.exists(KEY_FILE):
            self.assert_valid(example_check)
        else:
            self.assert_only_problem(example_check, example, "api_key_file", KEY_FILE)

    def write_dummy_key(self, path):
        with open(path, "w", encoding="ascii") as f:
            f.write("dummy-key-for-check-config\n")
        self.addCleanup(os.remove, path)
        os.chmod(path, 0o600)

    def assert_valid(self, result):
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("ok (1 profile(s))", result.stdout)

    def assert_only_problem(self, result, config, key, mention):
        self.assertEqual(result.returncode, 2, result.stdout)
        problems = result.stderr.splitlines()
        self.assertEqual(len(problems), 1, result.stderr)
        self.assertRegex(problems[0], rf"^{re.escape(config)}: profiles\.default\.{key}: "
                                      rf".*{re.escape(mention)}")


if __name__ == "__main__":
    unittest.main()
