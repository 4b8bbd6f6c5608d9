"""Emails over SMTP to a real SMTP server process (aiosmtpd) on loopback."""
import mailbox
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from bulkexport_local import local_client
from server import Server, free_port


@pytest.fixture(scope="module")
def smtp(tmp_path_factory):
    maildir = str(tmp_path_factory.mktemp("mail") / "inbox")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
                             "-c", "aiosmtpd.handlers.Mailbox", maildir])
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # start-up: waiting for the SMTP server to bind
    yield {"port": port, "maildir": maildir}
    proc.terminate()
    proc.wait(timeout=10)


def take(maildir, seen):
    """Messages that arrived since the last call (Maildir keys are not in arrival order)."""
    new = []
    box = mailbox.Maildir(maildir, create=False)
    for key in box.keys():
        if key in seen:
            continue
        seen.add(key)
        message = box[key]
        body = message.get_payload(decode=True).decode()
        new.append({"to": message["To"], "from": message["From"], "subject": message["Subject"], "body": body})
    return new


def test_initiation_completion_and_daily_emails(smtp):
    srv = Server(env={"BULKEXPORT_SMTP_URL": f"smtp://127.0.0.1:{smtp['port']}",
                      "BULKEXPORT_EMAIL_FROM": "Exports <exports@example.com>"},
                 args=["--clock", "2024-06-10T12:00:00Z"])
    seen = set()
    try:
        parent = srv.account("mail-parent", editions=True)
        sub = srv.account("mail-sub", parent=parent["sid"])
        for account, email, role in [(parent, "owner@p.example", "owner"), (parent, "admin@p.example", "Admin"),
                                     (parent, "viewer@p.example", "viewer"), (sub, "boss@s.example", "owner")]:
            srv.cli("users", "add", "--account", account["sid"], "--email", email, "--role", role)
        client = local_client(srv.base, sub["sid"], sub["auth_token"])
        jobs = client.bulkexports.v1.exports("Messages").export_custom_jobs
        job = jobs.create(start_day="2024-06-07", end_day="2024-06-08", friendly_name="june export",
                          email="ops@example.com")
        srv.drain()

        mail = take(smtp["maildir"], seen)
        started = {m["to"]: m for m in mail if m["subject"] == "Export job started: june export"}
        assert set(started) == {"owner@p.example", "admin@p.example", "boss@s.example"}, [m["to"] for m in mail]
        first = started["admin@p.example"]
        assert first["from"] == "Exports <exports@example.com>"
        assert f"Account {sub['sid']} started an export custom job" in first["body"]
        assert job.job_sid in first["body"] and "2024-06-07 to 2024-06-08" in first["body"]
        done = [m for m in mail if m["to"] == "ops@example.com"]
        assert len(done) == 1
        assert done[0]["subject"] == "Export job june export finished: Completed"
        assert job.job_sid in done[0]["body"]
        assert "CompletedEmptyRecords (2): 2024-06-07, 2024-06-08" in done[0]["body"]

        link = [line for line in first["body"].splitlines() if "/unsubscribe?" in line][0].strip()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(link.replace("Email=admin", "Email=owner"))
        assert refused.value.code == 403
        with urllib.request.urlopen(link) as r:
            assert r.status == 200
        jobs.create(start_day="2024-06-06", end_day="2024-06-06", friendly_name="second")
        srv.drain()
        again = {m["to"] for m in take(smtp["maildir"], seen) if m["subject"] == "Export job started: second"}
        assert again == {"owner@p.example", "boss@s.example"}, "the unsubscribe is honoured"

        parent_client = local_client(srv.base, parent["sid"], parent["auth_token"])
        parent_client.bulkexports.v1.export_configuration("Calls").update(enabled=True)
        # Email on ExportConfiguration is an extension the official clients do not send: plain HTTP here.
        req = urllib.request.Request(srv.base + "/v1/Exports/Calls/Configuration", data=b"Email=daily%40example.com",
                                     method="POST")
        import base64
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{parent['sid']}:{parent['auth_token']}".encode()).decode())
        with urllib.request.urlopen(req) as r:
            assert r.status == 200
        assert parent_client.bulkexports.v1.export_configuration("Calls").fetch().enabled is True
        srv.admin("/admin/v1/Clock", Now="2024-06-11T01:00:01Z")
        srv.drain()
        daily = [m for m in take(smtp["maildir"], seen) if m["to"] == "daily@example.com"]
        assert len(daily) == 1
        assert daily[0]["subject"] == "Daily export of Calls for 2024-06-10: Completed"
        assert "Size:" in daily[0]["body"]
    finally:
        srv.stop()
