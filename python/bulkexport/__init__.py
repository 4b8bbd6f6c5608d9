"""Start a bulkexport server from Python and steer it: the binary this wheel
installs, run on 127.0.0.1 with a temporary data directory, and its admin
API (drain, clock, faults, journals, reset) as methods.

    from bulkexport import BulkExport
    with BulkExport(fixtures="ci.toml") as bx:
        client = bx.client()
        ...
"""
import datetime as _dt
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

__all__ = ["BulkExport", "BulkExportError", "binary"]

_TWILIO_HOST = re.compile(r"^https://[A-Za-z0-9.-]+\.twilio\.com(?=/|$)")


class BulkExportError(RuntimeError):
    """The server did not start, or an admin call failed."""


def binary():
    """The `bulkexport` binary: $BULKEXPORT_BIN, the one this wheel put
    beside the interpreter's scripts, or the first on PATH."""
    env = os.environ.get("BULKEXPORT_BIN")
    if env:
        return env
    name = "bulkexport.exe" if sys.platform == "win32" else "bulkexport"
    for scripts in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        candidate = os.path.join(scripts, name)
        if os.path.isfile(candidate):
            return candidate
    found = shutil.which("bulkexport")
    if not found:
        raise BulkExportError("no bulkexport binary: install the bulkexport wheel or set BULKEXPORT_BIN")
    return found


def _one_account_fixtures(path):
    """A fixtures file of one account with random credentials, so that a
    reset gives the same account back."""
    sid = "AC" + secrets.token_hex(16)
    token = secrets.token_hex(16)
    with open(path, "w") as f:
        f.write(f'[[accounts]]\nsid = "{sid}"\nauth_token = "{token}"\nfriendly_name = "pytest"\neditions = true\n')
    return path


class Faults:
    """The fault rules of a server (`POST/GET/DELETE /admin/v1/Faults`)."""

    def __init__(self, server):
        self._server = server

    def add(self, kind, **params):
        """A rule: `add("DayError", Day="2026-01-02", Times=1)`; its JSON."""
        return self._server.admin("POST", "/admin/v1/Faults", Kind=kind, **params)

    def list(self):
        return self._server.admin("GET", "/admin/v1/Faults")["faults"]

    def clear(self):
        self._server.admin("DELETE", "/admin/v1/Faults")


class BulkExport:
    """A running `bulkexport serve` (see the module notes).

    `fixtures`: a fixtures file (else one account with random credentials);
    `args`: more `serve` arguments; `clock`: where the service clock starts
    (default now; it can then be moved with `advance`)."""

    def __init__(self, fixtures=None, args=(), clock=None, env=None, start_timeout=30):
        self.admin_token = secrets.token_hex(16)
        self.data_dir = tempfile.mkdtemp(prefix="bulkexport-")
        self.fixtures = fixtures or _one_account_fixtures(os.path.join(self.data_dir, "fixtures.toml"))
        ready = os.path.join(self.data_dir, "ready.json")
        start = clock or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        command = [binary(), "--data-dir", os.path.join(self.data_dir, "data"), "--listen", "127.0.0.1:0",
                   "serve", "--ready-file", ready, "--fixtures", self.fixtures, "--clock", start, *args]
        environment = dict(os.environ, BULKEXPORT_ADMIN_TOKEN=self.admin_token, **(env or {}))
        environment.setdefault("RUST_LOG", "warn")
        self.log_path = os.path.join(self.data_dir, "server.log")
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(command, env=environment, stdout=self._log, stderr=subprocess.STDOUT)
        # Waiting for the process to listen is start-up, not waiting for work.
        deadline = time.monotonic() + start_timeout
        while not os.path.exists(ready):
            if self.process.poll() is not None:
                raise BulkExportError(f"bulkexport exited at start: {self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise BulkExportError("bulkexport did not start in time")
            time.sleep(0.02)
        with open(ready) as f:
            info = json.load(f)
        self.url = info["url"]
        self.proxy_url = info.get("proxy_url")
        self.account_sid = info["account_sid"]
        self.auth_token = info["auth_token"]
        self.faults = Faults(self)

    def log(self):
        """What the server wrote so far."""
        with open(self.log_path) as f:
            return f.read()

    def admin(self, method, path, **params):
        """An admin API call (form for POST, query otherwise); its JSON or None."""
        form = {k: str(v) for k, v in params.items() if v is not None}
        data = urllib.parse.urlencode(form).encode() if method == "POST" else None
        query = "?" + urllib.parse.urlencode(form) if form and method != "POST" else ""
        request = urllib.request.Request(self.url + path + query, data=data, method=method,
                                         headers={"Authorization": f"Bearer {self.admin_token}"})
        try:
            with urllib.request.urlopen(request, timeout=120) as r:
                body = r.read()
        except urllib.error.HTTPError as e:
            raise BulkExportError(f"{method} {path}: {e.code} {e.read().decode(errors='replace')}") from None
        return json.loads(body) if body else None

    def client(self, username=None, password=None, **kwargs):
        """A twilio.rest.Client whose requests go to this server (the
        account's credentials unless others are given)."""
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        base = self.url

        class _Local(TwilioHttpClient):
            def request(self, method, url, *args, **kw):
                return super().request(method, _TWILIO_HOST.sub(base, url), *args, **kw)

        return Client(username or self.account_sid, password or self.auth_token,
                      http_client=_Local(), **kwargs)

    def drain(self, timeout=60):
        """Waits until every queued export and notification is done."""
        if not self.admin("POST", "/admin/v1/Queue/Drain", TimeoutSeconds=timeout)["idle"]:
            raise BulkExportError("the queue did not drain")

    def advance(self, duration):
        """Moves the service clock forward (`"90s"`, `"36h"`, `"8d"`, or a
        timedelta); answers the new time."""
        if isinstance(duration, _dt.timedelta):
            duration = f"{int(duration.total_seconds())}s"
        return self.admin("POST", "/admin/v1/Clock", Advance=duration)["now"]

    def deliveries(self, **filters):
        """The delivery journal (`AccountSid`, `JobSid`, `Channel`, `Status`)."""
        return self.admin("GET", "/admin/v1/Deliveries", **filters)["deliveries"]

    def emails(self, **filters):
        """Every email produced (`AccountSid`, `JobSid`, `To`, `Kind`)."""
        return self.admin("GET", "/admin/v1/Emails", **filters)["emails"]

    def requests(self, **filters):
        """The request journal (`AccountSid`, `Operation`, `Status`)."""
        return self.admin("GET", "/admin/v1/Requests", **filters)["requests"]

    def reset(self):
        """Removes everything, then applies the fixtures again."""
        self.admin("POST", "/admin/v1/Reset")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
