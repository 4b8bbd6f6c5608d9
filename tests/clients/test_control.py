"""A consumer's test suite with twilio-python: fixed credentials from a
fixtures file, fault rules, journals, and a reset between tests."""
import http.client
import http.server
import json
import os
import threading
import urllib.parse
import urllib.request

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator

from bulkexport_local import local_client
from server import ADMIN, Server

SID = "AC00000000000000000000000000000001"
TOKEN = "0123456789abcdef0123456789abcdef"
FIXTURES = f"""
[[accounts]]
sid = "{SID}"
auth_token = "{TOKEN}"
friendly_name = "consumer-suite"
  [[accounts.seed]]
  resource_type = "Messages"
  start_day = "2026-01-01"
  end_day = "2026-01-03"
  per_day = 40
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    path = os.path.join(tmp_path_factory.mktemp("fixtures"), "ci.toml")
    with open(path, "w") as f:
        f.write(FIXTURES)
    s = Server(args=("--fixtures", path, "--clock", "2026-01-10T00:00:00Z"))
    yield s
    s.stop()


@pytest.fixture
def bx(server):
    """The server, reset after each test as a consumer's suite would."""
    yield server
    admin(server, "POST", "/admin/v1/Reset")


def admin(server, method, path, **form):
    data = urllib.parse.urlencode(form).encode() if method == "POST" else None
    query = "?" + urllib.parse.urlencode(form) if form and method != "POST" else ""
    req = urllib.request.Request(server.base + path + query, data=data, method=method,
                                 headers={"Authorization": f"Bearer {ADMIN}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        body = r.read()
        return json.loads(body) if body else None


def client(server):
    # The credentials are hard-coded, as a CI configuration would have them.
    return local_client(server.base, SID, TOKEN).bulkexports.v1


def statuses(bulk, job_sid):
    return sorted(g["status"] for g in bulk.exports.jobs(job_sid).fetch().details)


class Hooks(http.server.BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        Hooks.received.append((self.path, dict(self.headers), dict(urllib.parse.parse_qsl(body))))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hooks():
    Hooks.received = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/hook"
    srv.shutdown()


def test_a_day_error_once_is_retried_and_one_without_times_fails(bx):
    bulk = client(bx)
    admin(bx, "POST", "/admin/v1/Faults", Kind="DayError", Day="2026-01-01", Times="1", Message="disk on fire")
    admin(bx, "POST", "/admin/v1/Faults", Kind="DayError", Day="2026-01-02")
    job = bulk.exports("Messages").export_custom_jobs.create(start_day="2026-01-01", end_day="2026-01-03",
                                                              friendly_name="faulty")
    bx.drain()
    assert statuses(bulk, job.job_sid) == ["Completed", "ErrorDuringRun"]
    for _ in range(3):
        admin(bx, "POST", "/admin/v1/Clock", Advance="10m")
        bx.drain()
    done = {g["status"]: g["days"] for g in bulk.exports.jobs(job.job_sid).fetch().details}
    assert done == {"Completed": ["2026-01-01", "2026-01-03"], "Failed": ["2026-01-02"]}
    fired = [f["fired"] for f in admin(bx, "GET", "/admin/v1/Faults")["faults"]]
    assert fired == [1, 3]


def test_a_webhook_duplicated_three_times_arrives_three_times_signed_with_one_token(bx, hooks):
    bulk = client(bx)
    admin(bx, "POST", "/admin/v1/Faults", Kind="WebhookDuplicate", Copies="3")
    job = bulk.exports("Messages").export_custom_jobs.create(
        start_day="2026-01-01", end_day="2026-01-01", friendly_name="dup", webhook_url=hooks, webhook_method="POST")
    bx.drain()
    assert len(Hooks.received) == 3
    validator = RequestValidator(TOKEN)
    tokens = set()
    for _, headers, params in Hooks.received:
        assert validator.validate(hooks, params, headers["X-Twilio-Signature"])
        tokens.add(headers["I-Twilio-Idempotency-Token"])
        assert params["JobSid"] == job.job_sid
    assert len(tokens) == 1
    journal = admin(bx, "GET", "/admin/v1/Deliveries", JobSid=job.job_sid)["deliveries"]
    assert len(journal) == 1
    assert journal[0]["headers"]["I-Twilio-Idempotency-Token"] in tokens
    assert journal[0]["attempts"][0]["status_code"] == 200
    requests = admin(bx, "GET", "/admin/v1/Requests", Operation="CreateExportCustomJob")["requests"]
    assert [r["status"] for r in requests] == [201]


def test_a_cut_download_is_noticed_and_an_injected_error_is_raised(bx):
    bulk = client(bx)
    job = bulk.exports("Messages").export_custom_jobs.create(start_day="2026-01-02", end_day="2026-01-02",
                                                              friendly_name="dl")
    bx.drain()
    admin(bx, "POST", "/admin/v1/Faults", Kind="DownloadTruncate", Bytes="64", Times="1")
    link = bulk.exports("Messages").days("2026-01-02").fetch().redirect_to
    with pytest.raises(http.client.IncompleteRead):
        with urllib.request.urlopen(link) as r:
            r.read()
    admin(bx, "POST", "/admin/v1/Faults", Kind="ApiError", Operation="FetchJob", Status="503")
    with pytest.raises(TwilioRestException) as e:
        bulk.exports.jobs(job.job_sid).fetch()
    assert e.value.status == 503 and e.value.code == 20503


def test_a_reset_leaves_only_the_fixtures(bx):
    bulk = client(bx)
    # The jobs, faults and journal entries of the tests before are gone.
    assert list(bulk.exports("Messages").export_custom_jobs.list()) == []
    assert admin(bx, "GET", "/admin/v1/Faults")["faults"] == []
    assert admin(bx, "GET", "/admin/v1/Deliveries")["deliveries"] == []
    days = [d.day for d in bulk.exports("Messages").days.list()]
    assert days == []
    job = bulk.exports("Messages").export_custom_jobs.create(start_day="2026-01-01", end_day="2026-01-01",
                                                              friendly_name="again")
    bx.drain()
    assert statuses(bulk, job.job_sid) == ["Completed"]
