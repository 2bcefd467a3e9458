#!/usr/bin/env python3
"""A fake IBM Cloud IAM token endpoint for iam-tokend's integration tests and demo.

It serves HTTPS on 127.0.0.1 and answers POST /identity/token the way IAM
does, closely enough for a token client: form-encoded grants, HTTP Basic
client authentication, JSON replies shaped like IAM's, and IAM-style error
bodies. A control API on the same server lets a test read what the fake saw
and issued, and change how it behaves while it runs.

Grants accepted on POST /identity/token
    grant_type=urn:ibm:params:oauth:grant-type:apikey   with apikey=KEY
    grant_type=refresh_token                            with refresh_token=TOK
    grant_type=password                                 with username, password
The request needs `Content-Type: application/x-www-form-urlencoded` and
`Authorization: Basic base64(client_id:client_secret)`. A `response_type`
containing `uaa` adds `uaa_token` and `uaa_refresh_token` to the reply; it
needs `uaa_client_id` (IAM's UAA client, `cf`) and a `uaa_client_secret`
field (empty for `cf`) too.

Errors this fake returns (status, errorCode, when). The codes follow IAM's
BXNIM numbering; those IAM documents are used for what it documents them
for, the rest are this fake's own choice:
    401 BXNIM0308E  missing or wrong Basic client credentials
    400 BXNIM0109E  a required form parameter is missing or empty (for
                    a UAA token: uaa_client_id missing or empty, or
                    uaa_client_secret missing)
    400 BXNIM0110E  Content-Type is not application/x-www-form-urlencoded
    400 BXNIM0103E  unsupported grant_type
    400 BXNIM0415E  API key not accepted ("Provided API key could not be found.")
    400 BXNIM0407E  refresh token unknown or revoked
    400 BXNIM0408E  with reject_refresh_code=BXNIM0408E: refresh token expired
    400 BXNIM0439E  with reject_refresh_code=BXNIM0439E: session not active
    400 BXNIM0602E  wrong username or password
    411 BXNIM0111E  no Content-Length (chunked bodies are not supported)
    413 BXNIM0112E  body larger than MAX_BODY_BYTES
    429 BXNIM0441E  injected with fail_status=429
    5xx BXNIM0500E  injected with fail_status=5xx
    4xx BXNIM0400E  injected with any other fail_status
Every error body is JSON:
    {"errorCode": "...", "errorMessage": "...",
     "context": {"requestId": "<uuid>", "requestType": "...", ...}}

Control API (no authentication; same host and port)
    GET  /_control/requests   every request seen on a non-control path, in
                              order: {time, request_id, path, method, grant_type,
                              authorization, content_type, accept, user_agent,
                              has_apikey, has_password, refresh_token_known,
                              refresh_token_revoked, response_type,
                              uaa_client_id, has_uaa_client_secret, status}
                              (status 0 means the connection was dropped)
    GET  /_control/issued     {"access_tokens": [...], "refresh_tokens": [...],
                               "uaa_tokens": [...],
                               "access_token_details": [{token, grant_type,
                                 issued_at, expires_at, expires_in}]}
                              every token that left in any reply body,
                              including deliberately broken ones
    GET  /_control/tls_errors every failed TLS handshake: {time, peer, error}
    GET  /_control/behaviour  the behaviour currently in force
    POST /_control/set        JSON object merged into the behaviour; an
                              unknown key is refused with 400
    POST /_control/reset      behaviour back to the start-up defaults (what
                              was seen and issued is kept)
    POST /_control/revoke     {"refresh_tokens": "all" | [tokens]}: revoke them

Behaviour switches (POST /_control/set); all apply to token requests only:
    token_life      seconds (float) a new token lives; expires_in is rounded
    fail_status     HTTP status to answer with instead of serving, or null
    fail_count      how many of the next token requests fail_status applies
                    to; -1 means until fail_status is cleared (default -1)
    fail_body       body for injected failures: null (an IAM error JSON that
                    fits the status), a JSON object (sent as it is), "html"
                    (an HTML error page), or any other string (sent as text)
    retry_after     value of a Retry-After header on injected failures, or null
    delay_s         seconds to hold every token reply before answering
    drop            true: close the connection without any reply
    bad_body        serve a broken success reply (HTTP 200): "not_json",
                    "truncated" (Content-Length promises more than is sent),
                    "missing_access_token", "missing_expires_in",
                    "zero_expires_in", "negative_expires_in", "huge"
                    (a body of HUGE_BODY_BYTES), "empty"
    reject_refresh  true: refresh grants get 400 BXNIM0407E and the refresh
                    token presented is revoked
    reject_apikey   true: API-key grants get 400 BXNIM0415E even for a
                    key that is accepted otherwise
    reject_refresh_code
                    the errorCode reject_refresh answers with: BXNIM0407E
                    (invalid, the default), BXNIM0408E (expired) or
                    BXNIM0439E (session not active)
    rotate_refresh  true: a refresh token is revoked once a refresh grant
                    has used it, as an IAM that rotates refresh tokens does
    refresh_token_in_reply
                    null: each reply carries a new refresh token; otherwise
                    what replies carry instead: "not_supported" (that
                    literal string), "absent", "empty" ("") or "null"
    same_token      true: every grant answers with the access token issued
                    last and its remaining life as expires_in
    expires_in_json null, or the raw JSON text sent as expires_in in
                    success replies (e.g. '"3600"', '1e30', 'true');
                    "" leaves the field out
    access_token_bytes, refresh_token_bytes
                    null, or the exact length of the tokens issued from now
    drip_s          > 0: success replies are sent one byte at a time with
                    this many seconds between bytes
    drip_body_only  true: with drip_s, the headers go at once and only the
                    body drips
    retry_after_date_s
                    null, or send Retry-After on injected failures as an
                    HTTP date this many seconds ahead (wins over retry_after)
    fail_body_bytes null, or pad "html" failure pages to this many bytes
    huge_bytes      the size of the "huge" bad body (default HUGE_BODY_BYTES)
    omit_uaa        true: replies carry no uaa_token or uaa_refresh_token,
                    even when response_type asks for them
More bad_body kinds: "reset" (Content-Length promises more than is sent,
then the connection is reset), "chunked_unfinished" (a chunked body whose
last chunk never comes), "cut_in_token" (a complete HTTP reply whose JSON
ends inside the access token), "html" (an HTML page labelled
application/json).
A request goes through them in this order: delay_s, drop, fail_status,
request checks, reject_*, bad_body, then the success reply (shaped by
same_token, refresh_token_in_reply, expires_in_json, the token sizes and
drip_s). To add a switch, add its default to default_behaviour() and act on
it in TokenHandler.handle_token().

Each request entry in /_control/requests also has refresh_token_sha256:
the first 16 hex digits of the SHA-256 of the refresh token presented, or
null, so a test can follow one refresh token without the fake keeping it
in its log.
"""

import argparse
import base64
import email.utils
import hashlib
import http.server
import json
import os
import secrets
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse
import uuid

TOKEN_PATH = "/identity/token"
CONTROL_PREFIX = "/_control/"
APIKEY_GRANT = "urn:ibm:params:oauth:grant-type:apikey"
FORM_TYPE = "application/x-www-form-urlencoded"

MAX_BODY_BYTES = 64 * 1024
HUGE_BODY_BYTES = 4 * 1024 * 1024
DEFAULT_TOKEN_LIFE_S = 3600.0
CLIENT_SOCKET_TIMEOUT_S = 30.0
RESET_PAUSE_S = 0.5
REFRESH_TOKEN_BYTES = 96

BAD_BODIES = (
    "not_json",
    "truncated",
    "missing_access_token",
    "missing_expires_in",
    "zero_expires_in",
    "negative_expires_in",
    "huge",
    "empty",
    "reset",
    "chunked_unfinished",
    "cut_in_token",
    "html",
)
REFRESH_TOKEN_FORMS = ("not_supported", "absent", "empty", "null")
REFRESH_REJECTIONS = {
    "BXNIM0407E": "Provided refresh token is invalid.",
    "BXNIM0408E": "Provided refresh token is expired.",
    "BXNIM0439E": "The session of this refresh token is no longer active.",
}
# A mark put in place of expires_in, then replaced by expires_in_json.
EXPIRES_IN_MARK = "__fake_iam_expires_in__"
HTTP_REASONS = {200: "OK", 502: "Bad Gateway"}


def default_behaviour(token_life):
    return {
        "token_life": float(token_life),
        "fail_status": None,
        "fail_count": -1,
        "fail_body": None,
        "retry_after": None,
        "delay_s": 0.0,
        "drop": False,
        "bad_body": None,
        "reject_refresh": False,
        "reject_apikey": False,
        "reject_refresh_code": "BXNIM0407E",
        "rotate_refresh": False,
        "refresh_token_in_reply": None,
        "same_token": False,
        "expires_in_json": None,
        "access_token_bytes": None,
        "refresh_token_bytes": None,
        "drip_s": 0.0,
        "drip_body_only": False,
        "retry_after_date_s": None,
        "fail_body_bytes": None,
        "huge_bytes": HUGE_BODY_BYTES,
        "omit_uaa": False,
    }


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def iam_error(code, message, request_id):
    return {
        "errorCode": code,
        "errorMessage": message,
        "context": {
            "requestId": request_id,
            "requestType": "incoming.Identity_Token",
            "host": "fake-iam",
            "instanceId": "fake-iam-0",
            "threadId": str(threading.get_ident()),
            "startTime": time.strftime("%d.%m.%Y %H:%M:%S GMT", time.gmtime()),
            "locale": "en_US",
        },
    }


def injected_error(status):
    if status == 429:
        return "BXNIM0441E", "Too many requests. Try again later."
    if status >= 500:
        return "BXNIM0500E", "The service is temporarily unavailable."
    return "BXNIM0400E", "The request was rejected."


class RequestError(Exception):
    """A token request that IAM would refuse: status, errorCode and message."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class IamState:
    """Everything the fake knows; every access goes through one lock."""

    def __init__(self, args):
        self.lock = threading.Lock()
        self.start_life = args.token_life
        self.behaviour = default_behaviour(args.token_life)
        self.api_keys = set(args.api_key or [])
        self.users = dict(u.split(":", 1) for u in (args.user or []))
        self.client_auth = "Basic " + base64.b64encode(
            f"{args.client_id}:{args.client_secret}".encode()).decode()
        self.requests = []
        self.tls_errors = []
        self.access_tokens = []
        self.access_details = []
        self.uaa_tokens = []
        # refresh token -> {"subject": str, "revoked": bool}
        self.refresh_tokens = {}
        self.log_file = open(args.log, "a", encoding="utf-8") if args.log else None

    def record_request(self, entry):
        with self.lock:
            self.requests.append(entry)
            if self.log_file:
                self.log_file.write(json.dumps(entry) + "\n")
                self.log_file.flush()

    def record_tls_error(self, peer, error):
        with self.lock:
            self.tls_errors.append({"time": time.time(), "peer": peer, "error": error})

    def take_injected_failure(self):
        """The status to fail this request with, consuming one of fail_count."""
        with self.lock:
            b = self.behaviour
            if b["fail_status"] is None or b["fail_count"] == 0:
                return None
            status = b["fail_status"]
            if b["fail_count"] > 0:
                b["fail_count"] -= 1
            return status

    def snapshot(self):
        with self.lock:
            return dict(self.behaviour)

    def set_behaviour(self, changes):
        unknown = sorted(set(changes) - set(self.behaviour))
        if unknown:
            raise ValueError(f"unknown behaviour keys: {unknown}; "
                             f"known: {sorted(self.behaviour)}")
        bad_body = changes.get("bad_body")
        if bad_body is not None and bad_body not in BAD_BODIES:
            raise ValueError(f"bad_body must be one of {list(BAD_BODIES)} or null")
        form = changes.get("refresh_token_in_reply")
        if form is not None and form not in REFRESH_TOKEN_FORMS:
            raise ValueError(f"refresh_token_in_reply must be one of "
                             f"{list(REFRESH_TOKEN_FORMS)} or null")
        code = changes.get("reject_refresh_code")
        if code is not None and code not in REFRESH_REJECTIONS:
            raise ValueError(f"reject_refresh_code must be one of {list(REFRESH_REJECTIONS)}")
        with self.lock:
            self.behaviour.update(changes)
            return dict(self.behaviour)

    def reset(self):
        with self.lock:
            self.behaviour = default_behaviour(self.start_life)
            return dict(self.behaviour)

    def revoke(self, which):
        with self.lock:
            targets = self.refresh_tokens.keys() if which == "all" else which
            for token in targets:
                if token in self.refresh_tokens:
                    self.refresh_tokens[token]["revoked"] = True

    def refresh_token_state(self, token):
        """(known, revoked) for a refresh token presented by a client."""
        with self.lock:
            entry = self.refresh_tokens.get(token)
            if entry is None:
                return False, False
            return True, entry["revoked"]

    def subject_of_refresh(self, token):
        with self.lock:
            return self.refresh_tokens[token]["subject"]

    def revoke_one(self, token):
        with self.lock:
            if token in self.refresh_tokens:
                self.refresh_tokens[token]["revoked"] = True

    def issued(self):
        with self.lock:
            return {
                "access_tokens": list(self.access_tokens),
                "refresh_tokens": list(self.refresh_tokens),
                "uaa_tokens": list(self.uaa_tokens),
                "access_token_details": [dict(d) for d in self.access_details],
            }

    def issue(self, subject, grant_type, with_uaa):
        """Mints and records a token set; returns the success body."""
        behaviour = self.snapshot()
        life = behaviour["token_life"]
        expires_in = max(1, round(life))
        now = time.time()
        refresh = make_refresh_token(behaviour["refresh_token_bytes"])
        if behaviour["same_token"] and self.access_details:
            return self.reissue_last(subject, refresh, now)
        access = make_jwt(subject, grant_type, int(now), expires_in,
                          behaviour["access_token_bytes"])
        body = token_body(access, refresh, expires_in, now)
        uaa = []
        if with_uaa:
            uaa = [make_jwt(subject, "uaa", int(now), expires_in),
                   secrets.token_urlsafe(REFRESH_TOKEN_BYTES)]
            body["uaa_token"], body["uaa_refresh_token"] = uaa
        with self.lock:
            self.access_tokens.append(access)
            self.access_details.append({
                "token": access,
                "grant_type": grant_type,
                "issued_at": now,
                "expires_at": now + life,
                "expires_in": expires_in,
            })
            self.refresh_tokens[refresh] = {"subject": subject, "revoked": False}
            self.uaa_tokens.extend(uaa)
        return body

    def reissue_last(self, subject, refresh, now):
        """The access token issued last, with its remaining life (same_token)."""
        with self.lock:
            last = self.access_details[-1]
            self.refresh_tokens[refresh] = {"subject": subject, "revoked": False}
        return token_body(last["token"], refresh, round(last["expires_at"] - now), now)


def token_body(access, refresh, expires_in, now):
    """A success reply shaped like IAM's."""
    return {
        "access_token": access,
        "refresh_token": refresh,
        "ims_user_id": 0,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "expiration": int(now) + expires_in,
        "scope": "ibm openid",
    }


def html_page(title, size):
    """An HTML error page, padded with a comment to `size` bytes when set."""
    page = (f"<html><head><title>{title}</title></head>"
            f"<body><h1>{title}</h1><p>Please try again later.</p></body></html>")
    if size and size > len(page):
        page += "<!--" + "p" * max(size - len(page) - 7, 0) + "-->"
    return page


def make_refresh_token(size):
    """An opaque refresh token, `size` characters long when size is set."""
    if not size:
        return secrets.token_urlsafe(REFRESH_TOKEN_BYTES)
    return secrets.token_urlsafe(size)[:size]


def make_jwt(subject, grant_type, iat, expires_in, size=None):
    """A JWT-shaped token; with `size`, its signature part is stretched or
    cut so that the whole token is exactly `size` characters long."""
    header = {"kid": "fake-iam-1", "alg": "RS256", "typ": "JWT"}
    payload = {
        "iam_id": f"iam-{subject}",
        "id": f"iam-{subject}",
        "realmid": "iam",
        "jti": str(uuid.uuid4()),
        "identifier": subject,
        "sub": subject,
        "sub_type": "ServiceId",
        "account": {"bss": "0123456789abcdef0123456789abcdef"},
        "iat": iat,
        "exp": iat + expires_in,
        "iss": "https://iam.fake.local/identity",
        "grant_type": grant_type,
        "scope": "ibm openid",
        "client_id": "bx",
    }
    head = ".".join([
        b64url(json.dumps(header, separators=(",", ":")).encode()),
        b64url(json.dumps(payload, separators=(",", ":")).encode()),
    ]) + "."
    if not size:
        return head + b64url(secrets.token_bytes(256))
    length = max(size - len(head), 16)
    return head + b64url(secrets.token_bytes(length))[:length]


def subject_for_key(api_key):
    digest = hashlib.sha256(api_key.encode()).hexdigest()
    return f"ServiceId-{digest[:8]}-{digest[8:12]}-{digest[12:16]}"


class TokenHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-iam/1.0"
    timeout = CLIENT_SOCKET_TIMEOUT_S

    @property
    def state(self):
        return self.server.state

    def log_message(self, format, *args):
        if self.server.verbose:
            super().log_message(format, *args)

    # --- plumbing -------------------------------------------------------

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise RequestError(411, "BXNIM0111E", "Content-Length is required.")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise RequestError(413, "BXNIM0112E", "The request body is too large.")
        return self.rfile.read(length) if length else b""

    def send(self, status, body, content_type="application/json", extra=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, no-store")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def send_iam_error(self, status, code, message, request_id, extra=None):
        self.send(status, iam_error(code, message, request_id), extra=extra)

    def send_dripped(self, status, body, drip_s, body_only):
        """A complete reply written one byte every drip_s seconds (after the
        headers when body_only); stops when the client hangs up."""
        head = (f"HTTP/1.1 {status} {HTTP_REASONS.get(status, 'Status')}\r\n"
                f"Server: {self.server_version}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n"
                "Cache-Control: no-cache, no-store\r\n\r\n").encode()
        self.close_connection = True
        payload = head + body
        if body_only:
            self.wfile.write(head)
            self.wfile.flush()
            payload = body
        try:
            for i in range(len(payload)):
                self.wfile.write(payload[i:i + 1])
                self.wfile.flush()
                time.sleep(drip_s)
        except OSError:
            pass

    def reset_connection(self):
        """Ends the connection with a TCP reset instead of a close."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        except OSError:
            pass

    def drop_connection(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # --- routing --------------------------------------------------------

    def do_GET(self):
        if self.path.startswith(CONTROL_PREFIX):
            self.handle_control("GET")
            return
        self.handle_other()

    def do_POST(self):
        if self.path.startswith(CONTROL_PREFIX):
            self.handle_control("POST")
            return
        if urllib.parse.urlsplit(self.path).path == TOKEN_PATH:
            self.handle_token()
            return
        self.handle_other()

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def handle_other(self):
        """Anything that is neither the token endpoint nor the control API."""
        request_id = str(uuid.uuid4())
        entry = self.new_entry(request_id)
        path = urllib.parse.urlsplit(self.path).path
        if path == TOKEN_PATH:
            entry["status"] = 405
            self.state.record_request(entry)
            self.send_iam_error(405, "BXNIM0105E", "Method not allowed.", request_id,
                                extra={"Allow": "POST"})
            return
        entry["status"] = 404
        self.state.record_request(entry)
        self.send_iam_error(404, "BXNIM0104E", "Not found.", request_id)

    def new_entry(self, request_id):
        return {
            "time": time.time(),
            "request_id": request_id,
            "path": self.path,
            "method": self.command,
            "grant_type": None,
            "authorization": self.headers.get("Authorization"),
            "content_type": self.headers.get("Content-Type"),
            "accept": self.headers.get("Accept"),
            "user_agent": self.headers.get("User-Agent"),
            "has_apikey": False,
            "has_password": False,
            "refresh_token_known": False,
            "refresh_token_revoked": False,
            "response_type": None,
            "refresh_token_sha256": None,
            "uaa_client_id": None,
            "has_uaa_client_secret": False,
            "status": None,
        }

    # --- the token endpoint ---------------------------------------------

    def handle_token(self):
        request_id = str(uuid.uuid4())
        entry = self.new_entry(request_id)
        try:
            form = self.parse_form(entry)
        except RequestError as err:
            entry["status"] = err.status
            self.state.record_request(entry)
            self.close_connection = True
            self.send_iam_error(err.status, err.code, err.message, request_id)
            return

        behaviour = self.state.snapshot()
        if behaviour["delay_s"] > 0:
            time.sleep(behaviour["delay_s"])

        if behaviour["drop"]:
            entry["status"] = 0
            self.state.record_request(entry)
            self.drop_connection()
            return

        status = self.state.take_injected_failure()
        if status is not None:
            entry["status"] = status
            self.state.record_request(entry)
            self.send_injected_failure(status, behaviour, request_id)
            return

        try:
            self.check_request(form)
            body = self.grant(form, behaviour)
        except RequestError as err:
            entry["status"] = err.status
            self.state.record_request(entry)
            self.send_iam_error(err.status, err.code, err.message, request_id)
            return

        if behaviour["bad_body"]:
            entry["status"] = 200
            self.state.record_request(entry)
            self.send_bad_body(behaviour["bad_body"], body, behaviour)
            return

        entry["status"] = 200
        self.state.record_request(entry)
        self.send_success(body, behaviour)

    def send_success(self, body, behaviour):
        form = behaviour["refresh_token_in_reply"]
        if form == "absent":
            del body["refresh_token"]
        elif form is not None:
            body["refresh_token"] = {"not_supported": "not_supported", "empty": "",
                                     "null": None}[form]

        raw_expires_in = behaviour["expires_in_json"]
        if raw_expires_in == "":
            del body["expires_in"]
        elif raw_expires_in is not None:
            body["expires_in"] = EXPIRES_IN_MARK
        text = json.dumps(body)
        if raw_expires_in:
            text = text.replace(json.dumps(EXPIRES_IN_MARK), raw_expires_in)

        if behaviour["drip_s"] > 0:
            self.send_dripped(200, text.encode(), behaviour["drip_s"],
                              behaviour["drip_body_only"])
            return
        self.send(200, text)

    def parse_form(self, entry):
        """Reads the form and fills in what the request log records about it."""
        raw = self.read_body()
        form = {k: v[0] for k, v in urllib.parse.parse_qs(
            raw.decode("utf-8", "replace"), keep_blank_values=True).items()}
        entry["grant_type"] = form.get("grant_type")
        entry["has_apikey"] = bool(form.get("apikey"))
        entry["has_password"] = bool(form.get("password"))
        entry["response_type"] = form.get("response_type")
        entry["uaa_client_id"] = form.get("uaa_client_id")
        entry["has_uaa_client_secret"] = "uaa_client_secret" in form
        if form.get("refresh_token"):
            known, revoked = self.state.refresh_token_state(form["refresh_token"])
            entry["refresh_token_known"] = known
            entry["refresh_token_revoked"] = revoked
            entry["refresh_token_sha256"] = hashlib.sha256(
                form["refresh_token"].encode()).hexdigest()[:16]
        return form

    def check_request(self, form):
        content_type = self.headers.get("Content-Type", "")
        if content_type.split(";")[0].strip().lower() != FORM_TYPE:
            raise RequestError(400, "BXNIM0110E",
                               f"Content-Type must be {FORM_TYPE}.")
        if self.headers.get("Authorization") != self.state.client_auth:
            raise RequestError(401, "BXNIM0308E",
                               "The client credentials are missing or invalid.")
        if not form.get("grant_type"):
            raise RequestError(400, "BXNIM0109E",
                               "Property missing or empty: grant_type.")

    def grant(self, form, behaviour):
        grant_type = form["grant_type"]
        with_uaa = "uaa" in (form.get("response_type") or "")
        if with_uaa and (not form.get("uaa_client_id") or "uaa_client_secret" not in form):
            raise RequestError(400, "BXNIM0109E",
                               "Property missing or empty: uaa_client_id or "
                               "uaa_client_secret.")
        with_uaa = with_uaa and not behaviour["omit_uaa"]
        if grant_type == APIKEY_GRANT:
            return self.apikey_grant(form, behaviour, with_uaa)
        if grant_type == "refresh_token":
            return self.refresh_grant(form, behaviour, with_uaa)
        if grant_type == "password":
            return self.password_grant(form, with_uaa)
        raise RequestError(400, "BXNIM0103E", f"Unsupported grant type: {grant_type}.")

    def apikey_grant(self, form, behaviour, with_uaa):
        api_key = form.get("apikey")
        if not api_key:
            raise RequestError(400, "BXNIM0109E", "Property missing or empty: apikey.")
        if behaviour["reject_apikey"] or api_key not in self.state.api_keys:
            raise RequestError(400, "BXNIM0415E", "Provided API key could not be found.")
        return self.state.issue(subject_for_key(api_key), "apikey", with_uaa)

    def refresh_grant(self, form, behaviour, with_uaa):
        token = form.get("refresh_token")
        if not token:
            raise RequestError(400, "BXNIM0109E",
                               "Property missing or empty: refresh_token.")
        known, revoked = self.state.refresh_token_state(token)
        if behaviour["reject_refresh"] and known:
            self.state.revoke_one(token)
        if behaviour["reject_refresh"]:
            code = behaviour["reject_refresh_code"]
            raise RequestError(400, code, REFRESH_REJECTIONS[code])
        if not known or revoked:
            raise RequestError(400, "BXNIM0407E", "Provided refresh token is invalid.")
        if behaviour["rotate_refresh"]:
            self.state.revoke_one(token)
        subject = self.state.subject_of_refresh(token)
        return self.state.issue(subject, "refresh_token", with_uaa)

    def password_grant(self, form, with_uaa):
        username, password = form.get("username"), form.get("password")
        if not username or not password:
            raise RequestError(400, "BXNIM0109E",
                               "Property missing or empty: username or password.")
        if self.state.users.get(username) != password:
            raise RequestError(400, "BXNIM0602E",
                               "The credentials you entered for the user are incorrect.")
        return self.state.issue(f"IBMid-{username}", "password", with_uaa)

    # --- injected faults ------------------------------------------------

    def send_injected_failure(self, status, behaviour, request_id):
        extra = {}
        if behaviour["retry_after"] is not None:
            extra["Retry-After"] = str(behaviour["retry_after"])
        if behaviour["retry_after_date_s"] is not None:
            extra["Retry-After"] = email.utils.formatdate(
                time.time() + behaviour["retry_after_date_s"], usegmt=True)
        body = behaviour["fail_body"]
        if body is None:
            code, message = injected_error(status)
            self.send_iam_error(status, code, message, request_id, extra=extra)
        elif isinstance(body, (dict, list)):
            self.send(status, body, extra=extra)
        elif body == "html":
            page = html_page(f"{status} Service Unavailable", behaviour["fail_body_bytes"])
            self.send(status, page, content_type="text/html", extra=extra)
        else:
            self.send(status, str(body), content_type="text/plain", extra=extra)

    def send_bad_body(self, kind, good, behaviour):
        if kind == "not_json":
            self.send(200, "this is not json " + good["access_token"][:8])
        elif kind == "truncated":
            self.send_truncated(json.dumps(good).encode())
        elif kind == "missing_access_token":
            self.send(200, {k: v for k, v in good.items() if k != "access_token"})
        elif kind == "missing_expires_in":
            self.send(200, {k: v for k, v in good.items() if k != "expires_in"})
        elif kind == "zero_expires_in":
            self.send(200, dict(good, expires_in=0))
        elif kind == "negative_expires_in":
            self.send(200, dict(good, expires_in=-300))
        elif kind == "huge":
            self.send(200, dict(good, padding="x" * behaviour["huge_bytes"]))
        elif kind == "empty":
            self.send(200, b"")
        elif kind == "reset":
            self.send_truncated(json.dumps(good).encode(), reset=True)
        elif kind == "chunked_unfinished":
            self.send_unfinished_chunks(json.dumps(good).encode())
        elif kind == "cut_in_token":
            text = json.dumps(good)
            cut = text.index(good["access_token"]) + len(good["access_token"]) // 2
            self.send(200, text[:cut])
        elif kind == "html":
            self.send(200, html_page("Maintenance", None))

    def send_truncated(self, body, reset=False):
        """Promises the whole body, sends half of it, then hangs up (with a
        TCP reset when `reset`)."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        if reset:
            # A reset right away would make the client's kernel discard
            # what was sent; a peer that dies mid-transfer lets it arrive.
            time.sleep(RESET_PAUSE_S)
            self.reset_connection()
        else:
            self.drop_connection()

    def send_unfinished_chunks(self, body):
        """A chunked body: its first half in one chunk, then a hang-up where
        the rest and the last (empty) chunk should have come."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        half = body[: len(body) // 2]
        self.wfile.write(f"{len(half):x}\r\n".encode() + half + b"\r\n")
        self.wfile.flush()
        self.drop_connection()

    # --- control API ----------------------------------------------------

    def handle_control(self, method):
        name = self.path[len(CONTROL_PREFIX):].split("?")[0]
        try:
            payload = self.read_control_body() if method == "POST" else None
            reply = self.control(method, name, payload)
        except RequestError as err:
            self.send(err.status, {"error": err.message})
            return
        except (ValueError, TypeError) as err:
            self.send(400, {"error": str(err)})
            return
        if reply is None:
            self.send(404, {"error": f"no control endpoint {method} {name}"})
            return
        self.send(200, reply)

    def read_control_body(self):
        raw = self.read_body()
        payload = json.loads(raw) if raw.strip() else {}
        if not isinstance(payload, dict):
            raise ValueError("the body must be a JSON object")
        return payload

    def control(self, method, name, payload):
        state = self.state
        if method == "GET" and name == "requests":
            with state.lock:
                return list(state.requests)
        if method == "GET" and name == "issued":
            return state.issued()
        if method == "GET" and name == "tls_errors":
            with state.lock:
                return list(state.tls_errors)
        if method == "GET" and name == "behaviour":
            return state.snapshot()
        if method == "POST" and name == "set":
            return state.set_behaviour(payload)
        if method == "POST" and name == "reset":
            return state.reset()
        if method == "POST" and name == "revoke":
            state.revoke(payload.get("refresh_tokens", "all"))
            return {"ok": True}
        return None


class FakeIamServer(http.server.ThreadingHTTPServer):
    """Accepts plain TCP and runs the TLS handshake in the request's thread,
    so one slow or failing handshake does not hold up the accept loop."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, ssl_context, state, verbose):
        super().__init__(address, TokenHandler)
        self.ssl_context = ssl_context
        self.state = state
        self.verbose = verbose

    def finish_request(self, request, client_address):
        request.settimeout(CLIENT_SOCKET_TIMEOUT_S)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as err:
            self.state.record_tls_error(f"{client_address[0]}:{client_address[1]}",
                                        str(err))
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            close_quietly(tls)

    def handle_error(self, request, client_address):
        # A client hanging up mid-exchange is expected in fault tests.
        if self.verbose:
            super().handle_error(request, client_address)


def close_quietly(sock):
    try:
        sock.close()
    except OSError:
        pass


def write_port_file(path, port):
    """Written to a temp file and renamed, so a reader never sees half of it."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(f"{port}\n")
    os.replace(tmp, path)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Fake IBM Cloud IAM token endpoint (HTTPS on 127.0.0.1) "
                    "with a control API under /_control/ for tests and demos.",
        epilog="Example: fake_iam.py --cert server.pem --key server.key "
               "--port 18443 --api-key demo-key --token-life 60. "
               "See the module docstring (pydoc) for the control API.")
    parser.add_argument("--cert", required=True, help="server certificate (PEM)")
    parser.add_argument("--key", required=True, help="server private key (PEM)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0,
                        help="port to listen on; 0 picks a free one (default 0)")
    parser.add_argument("--port-file",
                        help="write the port actually used to this file")
    parser.add_argument("--token-life", type=float, default=DEFAULT_TOKEN_LIFE_S,
                        help="seconds a token lives (float, default 3600)")
    parser.add_argument("--api-key", action="append", metavar="KEY",
                        help="an API key to accept (repeatable)")
    parser.add_argument("--user", action="append", metavar="NAME:PASSWORD",
                        help="a user for the password grant (repeatable)")
    parser.add_argument("--client-id", default="bx", help="Basic auth client id (bx)")
    parser.add_argument("--client-secret", default="bx",
                        help="Basic auth client secret (bx)")
    parser.add_argument("--log", help="append one JSON line per token request here")
    parser.add_argument("--verbose", action="store_true",
                        help="print each request and handler error to stderr")
    args = parser.parse_args(argv)
    for user in args.user or []:
        if ":" not in user:
            parser.error(f"--user needs NAME:PASSWORD, got {user!r}")
    return args


def main(argv=None):
    args = parse_args(argv)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)

    server = FakeIamServer((args.host, args.port), context, IamState(args), args.verbose)
    port = server.server_address[1]
    if args.port_file:
        write_port_file(args.port_file, port)

    def stop(signum, frame):
        # shutdown() waits for serve_forever(), which runs on this very thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    print(f"fake_iam: ready on https://{args.host}:{port}{TOKEN_PATH}", flush=True)
    server.serve_forever()
    server.server_close()
    print("fake_iam: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
