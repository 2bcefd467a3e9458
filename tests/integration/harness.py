"""Shared pieces of iam-tokend's integration tests.

Each test runs the real daemon binary (path in $IAM_TOKEND_BIN) against the
fake IAM server over real TLS, in a fresh temporary folder under /tmp:

    tmp/pki/...            the throwaway CAs and server certificates
    tmp/fake-iam.out       the fake's stdout and stderr
    tmp/fake-iam.jsonl     the fake's request log
    tmp/config.json        the daemon's config
    tmp/apikey             the daemon's API key file
    tmp/daemon.log         the daemon's stderr (its log) and stdout
    tmp/tokend.sock        the daemon's Unix socket

Every process is started in its own session and its whole process group is
killed at clean-up, whatever the outcome. A failed test keeps its folder and
prints the tail of the daemon's log; IAM_TOKEND_KEEP_TMP=1 keeps it always.
"""

import base64
import copy
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE_DIR = os.path.join(os.path.dirname(HERE), "fake_iam")
FAKE_IAM = os.path.join(FAKE_DIR, "fake_iam.py")
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_BINARY = os.path.join(REPO, "build", "daemon", "iam-tokend")
sys.path.insert(0, FAKE_DIR)

import make_test_ca  # noqa: E402  (found through the path set just above)

STARTUP_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
CLIENT_TIMEOUT_S = 15.0
ERROR_TIMEOUT_S = 5.0
POLL_INTERVAL_S = 0.05
LOG_TAIL_LINES = 60

# How AddressSanitizer, LeakSanitizer and UBSan start their reports.
SANITIZER_REPORT = re.compile(r"(ERROR: \w*Sanitizer|SUMMARY: \w*Sanitizer|runtime error: )")

BASIC_BX = "Basic " + base64.b64encode(b"bx:bx").decode()
FORM_TYPE = "application/x-www-form-urlencoded"
APIKEY_GRANT = "urn:ibm:params:oauth:grant-type:apikey"
DEFAULT_API_KEY = "it-key-" + base64.b32encode(os.urandom(15)).decode().lower()


def daemon_binary():
    """$IAM_TOKEND_BIN, else the binary of a build in <repo>/build."""
    path = os.environ.get("IAM_TOKEND_BIN") or DEFAULT_BINARY
    if not os.access(path, os.X_OK):
        raise AssertionError(f"no iam-tokend binary at {path}: build it or set "
                             "IAM_TOKEND_BIN")
    return path


def wait_until(predicate, timeout, what, interval=POLL_INTERVAL_S):
    """Polls predicate until it returns something truthy; fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


def start_process(argv, log_path, env=None):
    """Starts argv in its own session with stdout and stderr going to log_path."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)


def stop_process(proc, sig=signal.SIGTERM, timeout=STOP_TIMEOUT_S):
    """Signals the process group, waits, then kills it; returns the exit code."""
    if proc.poll() is None:
        signal_group(proc, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    kill_group(proc)
    return proc.returncode


def signal_group(proc, sig):
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def kill_group(proc):
    """SIGKILL to whatever is left of the group, the leader included."""
    signal_group(proc, signal.SIGKILL)
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pass


def reserve_port():
    """A port the kernel picked, bound but not listening: connects are refused.

    Returns (port, socket); close the socket just before something else
    needs to listen on the port.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock.getsockname()[1], sock


def deep_merge(base, changes):
    """base updated by changes, nested dicts merged; a None value deletes a key."""
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def jwt_claims(token):
    payload = token.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))


# --- the fake IAM ----------------------------------------------------------


class FakeIam:
    """The fake IAM server as a child process, and a client for its control API."""

    def __init__(self, tmp, pki, api_keys, token_life=3600.0, port=0, extra_args=()):
        self.tmp = tmp
        self.pki = pki
        self.api_keys = list(api_keys)
        self.token_life = token_life
        self.port = port
        self.extra_args = list(extra_args)
        self.proc = None
        self.ssl_context = ssl.create_default_context(cafile=pki["ca"])

    @property
    def token_url(self):
        return f"https://127.0.0.1:{self.port}/identity/token"

    def start(self):
        port_file = os.path.join(self.tmp, "fake-iam.port")
        if os.path.exists(port_file):
            os.remove(port_file)
        argv = [sys.executable, FAKE_IAM,
                "--cert", self.pki["server"], "--key", self.pki["server_key"],
                "--port", str(self.port), "--port-file", port_file,
                "--token-life", str(self.token_life),
                "--log", os.path.join(self.tmp, "fake-iam.jsonl")]
        for key in self.api_keys:
            argv += ["--api-key", key]
        argv += self.extra_args
        self.proc = start_process(argv, os.path.join(self.tmp, "fake-iam.out"))

        def port_written():
            if self.proc.poll() is not None:
                raise AssertionError(f"fake IAM exited with {self.proc.returncode}; "
                                     f"see {self.tmp}/fake-iam.out")
            return os.path.exists(port_file)

        wait_until(port_written, STARTUP_TIMEOUT_S, "the fake IAM's port file")
        with open(port_file, encoding="ascii") as f:
            self.port = int(f.read())
        return self

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc)

    def control(self, method, name, body=None):
        conn = http.client.HTTPSConnection("127.0.0.1", self.port,
                                           context=self.ssl_context,
                                           timeout=CLIENT_TIMEOUT_S)
        try:
            payload = json.dumps(body) if body is not None else None
            conn.request(method, f"/_control/{name}", body=payload,
                         headers={"Content-Type": "application/json"})
            reply = conn.getresponse()
            data = reply.read()
            if reply.status != 200:
                raise AssertionError(f"fake IAM control {name}: {reply.status} {data!r}")
            return json.loads(data)
        finally:
            conn.close()

    def requests(self):
        return self.control("GET", "requests")

    def token_requests(self):
        return [r for r in self.requests() if r["path"].startswith("/identity/token")]

    def grants(self, grant_type):
        return [r for r in self.token_requests() if r["grant_type"] == grant_type]

    def issued(self):
        return self.control("GET", "issued")

    def tls_errors(self):
        return self.control("GET", "tls_errors")

    def set(self, **behaviour):
        return self.control("POST", "set", behaviour)

    def reset(self):
        return self.control("POST", "reset", {})


# --- the daemon ------------------------------------------------------------


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix domain socket."""

    def __init__(self, path, timeout=CLIENT_TIMEOUT_S):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return f"<Reply {self.status} {self.body[:200]!r}>"


def unix_request(path, method, target, timeout=CLIENT_TIMEOUT_S):
    conn = UnixHTTPConnection(path, timeout)
    try:
        conn.request(method, target)
        reply = conn.getresponse()
        return Reply(reply.status, reply.headers, reply.read())
    finally:
        conn.close()


class Daemon:
    """The real iam-tokend, run from a config written into the test folder."""

    def __init__(self, tmp):
        self.binary = daemon_binary()
        self.tmp = tmp
        self.socket_path = os.path.join(tmp, "tokend.sock")
        self.config_path = os.path.join(tmp, "config.json")
        self.log_path = os.path.join(tmp, "daemon.log")
        self.proc = None

    def write_config(self, token_url, ca_file, api_key_file, profile=None, top=None):
        """Writes the config; profile and top are merged into the defaults."""
        default_profile = {
            "iam_url": token_url,
            "api_key_file": api_key_file,
            "ca_file": ca_file,
            "timeouts": {"connect_s": 2, "request_s": 5},
            "refresh": {"min_valid_s": 1, "backoff_initial_s": 0.2,
                        "backoff_max_s": 2},
        }
        config = {
            "socket": {"path": self.socket_path, "mode": "0660"},
            "log": {"level": "debug"},
            "profiles": {"default": deep_merge(default_profile, profile or {})},
        }
        config = deep_merge(config, top or {})
        with open(self.config_path, "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2)
        return config

    def start(self, wait_for_socket=True, env=None, prefix=()):
        """prefix: a command that runs the daemon, e.g. ("prlimit", "--nofile=64")."""
        self.proc = start_process([*prefix, self.binary, "run", "-c", self.config_path],
                                  self.log_path, env)
        if wait_for_socket:
            self.wait_for_socket()
        return self

    def wait_for_socket(self, timeout=STARTUP_TIMEOUT_S):
        def answering():
            if self.proc.poll() is not None:
                raise AssertionError(f"iam-tokend exited with {self.proc.returncode} "
                                     f"before its socket answered:\n{self.log_tail()}")
            try:
                return unix_request(self.socket_path, "GET", "/v1/health", 2.0)
            except OSError:
                return None

        wait_until(answering, timeout, f"the daemon's socket {self.socket_path}")

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT_S):
        if self.proc is None:
            return None
        return stop_process(self.proc, sig, timeout)

    def request(self, method, target, timeout=CLIENT_TIMEOUT_S):
        return unix_request(self.socket_path, method, target, timeout)

    def get(self, target, timeout=CLIENT_TIMEOUT_S):
        return self.request("GET", target, timeout)

    def status(self):
        reply = self.get("/v1/status")
        if reply.status != 200:
            raise AssertionError(f"/v1/status answered {reply}")
        return reply.json()

    def profile_status(self, profile="default"):
        return self.status()["profiles"][profile]

    def cli(self, *args, timeout=CLIENT_TIMEOUT_S, env=None):
        """Runs the binary as a client; returns the CompletedProcess."""
        return subprocess.run([self.binary, *args], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, env=env)

    def read_log(self):
        if not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def log_tail(self, lines=LOG_TAIL_LINES):
        return "\n".join(self.read_log().splitlines()[-lines:])


def curl_unix(socket_path, target, *extra):
    """curl over the Unix socket; returns (status, headers text, body text)."""
    argv = ["curl", "-sS", "--max-time", str(CLIENT_TIMEOUT_S),
            "--unix-socket", socket_path, "-D", "-", *extra,
            f"http://localhost{target}"]
    # Bytes, not text: text mode would turn the CRLFs that split head and body.
    result = subprocess.run(argv, capture_output=True, timeout=CLIENT_TIMEOUT_S + 5)
    if result.returncode != 0:
        raise AssertionError(f"curl failed ({result.returncode}): {result.stderr!r}")
    head, _, body = result.stdout.decode("utf-8", "replace").partition("\r\n\r\n")
    status = int(head.split(" ", 2)[1])
    return status, head, body


def header_value(head, name):
    """The value of header `name` in a raw header block, or None."""
    for line in head.split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


# --- raw clients and process figures ---------------------------------------


def raw_connect(socket_path, timeout=CLIENT_TIMEOUT_S):
    """A plain connected Unix socket, for clients that misbehave on purpose."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(socket_path)
    except OSError:
        sock.close()
        raise
    return sock


def read_until_closed(sock, limit=1 << 22):
    """Everything the peer sends until it closes (or `limit` bytes)."""
    chunks, size = [], 0
    while size < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def raw_exchange(socket_path, data, timeout=CLIENT_TIMEOUT_S):
    """Sends raw bytes on a new connection, half-closes it, and returns every
    byte the daemon sent back before it closed the connection."""
    with raw_connect(socket_path, timeout) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        return read_until_closed(sock)


def split_responses(data):
    """Parses HTTP responses sent one after another into Reply objects."""
    replies = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            raise AssertionError(f"a response without the end of its header: {data[:200]!r}")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        replies.append(Reply(status, headers, rest[:length]))
        data = rest[length:]
    return replies


def open_fds(pid):
    """How many file descriptors the process has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid):
    """User plus system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are the 14th and 15th fields; fields[0] is the 3rd.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raise_own_fd_limit():
    """Lets the test process open as many sockets as its hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# --- the test base ---------------------------------------------------------


class IntegrationTest(unittest.TestCase):
    """A temp folder, the PKI, and clean-up of every process a test starts.

    Subclasses call start_fake() and start_daemon(); both are stopped when the
    test ends, and check_no_secrets_logged() runs on the daemon's log then.
    """

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix=f"iam-tokend-it-{self._testMethodName}-",
                                    dir="/tmp")
        self.pki = make_test_ca.make_test_pki(os.path.join(self.tmp, "pki"))
        self.api_key = DEFAULT_API_KEY
        self.api_key_file = self.write_secret_file("apikey", self.api_key)
        self.fake = None
        self.daemon = None

    def run(self, result=None):
        result = result if result is not None else self.defaultTestResult()
        problems_before = len(result.failures) + len(result.errors)
        super().run(result)
        failed = len(result.failures) + len(result.errors) > problems_before
        self.finish_tmp(failed)
        return result

    def finish_tmp(self, failed):
        tmp = getattr(self, "tmp", None)
        if tmp is None:
            return
        if failed:
            if self.daemon is not None:
                sys.stderr.write(f"\n--- tail of {self.daemon.log_path} ---\n"
                                 f"{self.daemon.log_tail()}\n--- end ---\n")
            sys.stderr.write(f"test folder kept: {tmp}\n")
            return
        if os.environ.get("IAM_TOKEND_KEEP_TMP") == "1":
            sys.stderr.write(f"test folder kept: {tmp}\n")
            return
        shutil.rmtree(tmp, ignore_errors=True)

    def write_secret_file(self, name, value):
        path = os.path.join(self.tmp, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(value + "\n")
        os.chmod(path, 0o600)
        return path

    def start_fake(self, token_life=3600.0, api_keys=None, port=0, extra_args=()):
        keys = [self.api_key] if api_keys is None else api_keys
        self.fake = FakeIam(self.tmp, self.pki, keys, token_life, port, extra_args)
        self.addCleanup(self.fake.stop)
        return self.fake.start()

    def start_extra_fake(self, name, token_life=3600.0, api_keys=None, extra_args=()):
        """Another fake IAM, with its files in the subfolder `name`; stopped at
        clean-up. self.fake is left alone."""
        folder = os.path.join(self.tmp, name)
        os.makedirs(folder, exist_ok=True)
        keys = [self.api_key] if api_keys is None else api_keys
        fake = FakeIam(folder, self.pki, keys, token_life, 0, extra_args)
        self.addCleanup(fake.stop)
        return fake.start()

    def prepare_daemon(self, profile=None, top=None, token_url=None, ca_file=None):
        """Writes the config for the running fake; the daemon is not started."""
        self.daemon = Daemon(self.tmp)
        url = token_url or self.fake.token_url
        self.daemon.write_config(url, ca_file or self.pki["ca"], self.api_key_file,
                                 profile, top)
        self.addCleanup(self.stop_daemon_and_check)
        return self.daemon

    def start_daemon(self, profile=None, top=None, token_url=None, ca_file=None,
                     wait_for_socket=True, env=None):
        self.prepare_daemon(profile, top, token_url, ca_file)
        return self.daemon.start(wait_for_socket, env)

    def stop_daemon_and_check(self):
        self.daemon.stop()
        self.check_no_secrets_logged()
        self.check_no_sanitizer_report()

    def check_no_sanitizer_report(self, text=None, where=None):
        """Fails if AddressSanitizer, LeakSanitizer or UBSan reported anything
        (in the daemon's log unless given): the suite also runs against a
        sanitizer build, whose reports go to stderr."""
        if text is None:
            text, where = self.daemon.read_log(), self.daemon.log_path
        found = SANITIZER_REPORT.search(text)
        if found:
            start = max(0, found.start() - 200)
            raise AssertionError(f"sanitizer report in {where}:\n{text[start:start + 2000]}")

    def secrets_in_use(self):
        """(name, value) of every secret the daemon has seen: the API key, and
        every token the fake issued while it is still there to ask."""
        found = [("API key", self.api_key)]
        fake_running = (self.fake is not None and self.fake.proc is not None
                        and self.fake.proc.poll() is None)
        if not fake_running:
            return found
        issued = self.fake.issued()
        found += [("access token", t) for t in issued["access_tokens"]]
        found += [("refresh token", t) for t in issued["refresh_tokens"]]
        found += [("uaa token", t) for t in issued["uaa_tokens"]]
        return found

    def check_no_secrets_logged(self, text=None, where=None):
        """Fails if any secret, or the signature part of any JWT, is in the
        text (the daemon's log unless given)."""
        if text is None:
            text, where = self.daemon.read_log(), self.daemon.log_path
        leaks = []
        for name, value in self.secrets_in_use():
            if value in text:
                leaks.append(f"{name} ending ...{value[-6:]}")
            elif value.count(".") == 2 and value.rsplit(".", 1)[1] in text:
                leaks.append(f"signature of {name} ending ...{value[-6:]}")
        if leaks:
            raise AssertionError(f"secrets found in {where}: {leaks}")

    # --- small assertions shared by the tests --------------------------

    def wait_for_last_error(self, timeout=ERROR_TIMEOUT_S):
        """The default profile's last_error, once /v1/status shows one."""
        return wait_until(lambda: self.daemon.profile_status()["last_error"],
                          timeout, "a last_error in /v1/status")

    def get_token(self, query="", timeout=CLIENT_TIMEOUT_S):
        reply = self.daemon.get(f"/v1/token{query}", timeout)
        self.assertEqual(reply.status, 200, reply)
        return reply.json()["access_token"]

    def assert_issued(self, token):
        issued = self.fake.issued()["access_tokens"]
        self.assertIn(token, issued,
                      f"served token ...{token[-8:]} was not issued by the fake IAM")


def rewrite_config(path, change):
    """Loads the JSON config at path, lets change(config) edit it in place,
    and writes it back."""
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    change(config)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)


# --- systemd's notify protocol ---------------------------------------------


class NotifySocket:
    """A datagram socket in the test folder standing in for systemd's
    NOTIFY_SOCKET. Every datagram is kept with its arrival time and the
    sender's pid (from SCM_CREDENTIALS), so tests can check who sent what
    and when."""

    MAX_DATAGRAM = 4096

    def __init__(self, tmp, name="notify.sock"):
        self.path = os.path.join(tmp, name)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.messages = []  # (monotonic time, sender pid, {name: value}, raw text)

    def env(self, **extra):
        """os.environ with NOTIFY_SOCKET pointing here, plus extra variables."""
        return dict(os.environ, NOTIFY_SOCKET=self.path, **extra)

    def close(self):
        self.sock.close()

    def receive(self, timeout):
        """Reads one datagram within timeout and records it; None if none came."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data, ancillary, _, _ = self.sock.recvmsg(
                self.MAX_DATAGRAM, socket.CMSG_SPACE(12))
        except socket.timeout:
            return None
        pid = None
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = int.from_bytes(payload[0:4], sys.byteorder)
        text = data.decode("utf-8", "replace")
        fields = dict(line.split("=", 1) for line in text.split("\n") if "=" in line)
        message = (time.monotonic(), pid, fields, text)
        self.messages.append(message)
        return message

    def wait_for(self, name, value=None, timeout=STARTUP_TIMEOUT_S):
        """Receives until a message sets `name` (to `value`, if given);
        returns that message."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                seen = [m[3] for m in self.messages]
                raise AssertionError(f"no {name}={value or '...'} on the notify socket "
                                     f"within {timeout:.1f} s; received {seen}")
            message = self.receive(left)
            if message is None:
                continue
            fields = message[2]
            if name in fields and (value is None or fields[name] == value):
                return message

    def drain(self, duration):
        """Receives everything that arrives during `duration` seconds."""
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            self.receive(deadline - time.monotonic())
        return self.messages

    def with_field(self, name):
        return [m for m in self.messages if name in m[2]]


# --- running a test file ---------------------------------------------------

# ctest reports a test that exits with this code as skipped, not passed
# (SKIP_RETURN_CODE in CMakeLists.txt).
EXIT_SKIPPED = 77


def main():
    """unittest.main(), but a file whose every test was skipped exits with
    EXIT_SKIPPED, so that ctest shows it as skipped."""
    result = unittest.main(exit=False).result
    if not result.wasSuccessful():
        sys.exit(1)
    if result.skipped and len(result.skipped) >= result.testsRun:
        sys.exit(EXIT_SKIPPED)
    sys.exit(0)
