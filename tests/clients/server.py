"""Starts a real `bulkexport serve` for the client suites and drives its CLI and admin API."""
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("BULKEXPORT_BIN", os.path.join(ROOT, "target", "debug", "bulkexport"))
ADMIN = "client-suite-admin-token"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def own_database(env):
    """On PostgreSQL and S3, a fresh database and storage prefix for one server.

    Each server must see only its own records, queue and clock, as it does on
    SQLite with its own data directory: a server whose clock is set elsewhere
    must not claim this one's jobs or deletions.
    """
    url = env.get("BULKEXPORT_DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        return env
    name = "suite_" + uuid.uuid4().hex[:16]
    subprocess.run(["psql", url, "-qc", f"CREATE DATABASE {name}"], check=True)
    env = dict(env, BULKEXPORT_DATABASE_URL=url.rsplit("/", 1)[0] + "/" + name)
    if env.get("BULKEXPORT_STORAGE_URL"):
        env["BULKEXPORT_STORAGE_URL"] = env["BULKEXPORT_STORAGE_URL"].rstrip("/") + "/" + name
    return env


class Server:
    """One service process on loopback with its own data directory (and, on
    PostgreSQL, its own database)."""

    def __init__(self, env=None, args=()):
        self.dir = tempfile.mkdtemp(prefix="bulkexport-clients-")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = own_database(dict(os.environ, BULKEXPORT_ADMIN_TOKEN=ADMIN, RUST_LOG="warn", **(env or {})))
        self.env = env
        self.log = open(os.path.join(self.dir, "server.log"), "w")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--data-dir", self.dir, "--listen", f"127.0.0.1:{self.port}", *args],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self):
        # Waiting for the process to bind is start-up, not waiting for work.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {open(self.log.name).read()}")
            try:
                with urllib.request.urlopen(self.base + "/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not become ready")

    def cli(self, *args):
        """Runs a CLI subcommand against the same data directory (a second process on the same SQLite file)."""
        out = subprocess.run([BIN, "--data-dir", self.dir, *args], env=self.env, check=True, capture_output=True, text=True)
        return json.loads(out.stdout) if out.stdout.strip() else None

    def account(self, name="client-suite", parent=None, editions=False):
        args = ["accounts", "create", "--friendly-name", name]
        if parent:
            args += ["--parent", parent]
        if editions:
            args.append("--editions")
        return self.cli(*args)

    def drain(self):
        req = urllib.request.Request(self.base + "/admin/v1/Queue/Drain", data=b"", method="POST",
                                     headers={"Authorization": f"Bearer {ADMIN}"})
        with urllib.request.urlopen(req, timeout=120) as r:
            assert json.load(r)["idle"] is True

    def admin(self, path, **form):
        data = urllib.parse.urlencode(form).encode()
        req = urllib.request.Request(self.base + path, data=data, method="POST",
                                     headers={"Authorization": f"Bearer {ADMIN}"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.load(r)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)  # its database holds the suite's records


def day(offset):
    """The UTC day `offset` days before today."""
    return (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=offset)).isoformat()


if __name__ == "__main__":
    sys.exit("import this module")
