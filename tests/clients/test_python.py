"""Conformance of the service with the official twilio-python client."""
import gzip
import json
import os
import urllib.request

import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException

from bulkexport_local import local_client
from records import day_file_shape, file_order, rest_messages, write_ndjson
from server import day


@pytest.fixture(scope="module")
def account(server):
    return server.account("python-suite", editions=True)


@pytest.fixture(scope="module")
def client(server, account):
    return local_client(server.base, account["sid"], account["auth_token"])


def bulk(client):
    return client.bulkexports.v1


def test_export_custom_job_through_download_matches_ingested_records(server, account, client, tmp_path):
    d1, d2 = day(6), day(5)
    rest = rest_messages(account["sid"], d1, 150, seed=1) + rest_messages(account["sid"], d2, 120, seed=2)
    path = os.path.join(tmp_path, "messages.ndjson")
    write_ndjson(path, rest)
    report = server.cli("ingest", "--account", account["sid"], "--resource-type", "Messages", path)
    assert report["loaded"] == 270 and report["rejected"] == 0

    export = bulk(client).exports("Messages")
    assert export.fetch().links["days"].endswith("/v1/Exports/Messages/Days")
    job = export.export_custom_jobs.create(start_day=d1, end_day=day(4), friendly_name="python")
    assert job.job_sid.startswith("JS")
    assert job.job_queue_position is None or int(job.job_queue_position) >= 1
    server.drain()

    fetched = bulk(client).exports.jobs(job.job_sid).fetch()
    by_status = {g["status"]: g for g in fetched.details}
    assert by_status["Completed"]["days"] == [d1, d2]
    assert by_status["Completed"]["count"] == 2
    assert by_status["CompletedEmptyRecords"]["days"] == [day(4)]

    for d in (d1, d2):
        link = export.days(d).fetch().redirect_to
        with urllib.request.urlopen(link) as r:
            assert r.headers["Content-Type"] == "application/gzip"
            assert r.headers.get("Content-Encoding") is None
            lines = gzip.decompress(r.read()).decode().splitlines()
        got = [json.loads(line) for line in lines]
        want = file_order([day_file_shape("Messages", x) for x in rest if x["date_created"] and d in _iso_day(x)])
        assert got == want


def _iso_day(rest_record):
    from records import iso
    return iso(rest_record["date_created"])[:10]


def test_lists_page_through_more_than_one_page(server, account, client):
    export = bulk(client).exports("Conferences")
    sids = [export.export_custom_jobs.create(start_day=day(9), end_day=day(9 - i), friendly_name=f"p{i}").job_sid
            for i in range(5)]
    first = export.export_custom_jobs.page(page_size=2)
    assert len(list(first)) == 2
    second = first.next_page()
    assert second is not None and len(list(second)) == 2
    listed = [j.job_sid for j in export.export_custom_jobs.stream(page_size=2)]
    assert listed == sids
    server.drain()
    days = [d.day for d in export.days.stream(page_size=2)]
    assert sorted(days) == [day(9 - i) for i in range(5)]
    assert len(export.days.list(page_size=3, limit=4)) == 4


def test_api_keys_and_subaccounts(server, account):
    key = server.cli("keys", "create", "--account", account["sid"])
    keyed = local_client(server.base, key["sid"], key["secret"], account_sid=account["sid"])
    assert keyed.bulkexports.v1.exports("Calls").fetch().resource_type == "Calls"
    sub = server.account("python-sub", parent=account["sid"])
    as_parent = local_client(server.base, sub["sid"], account["auth_token"])
    assert as_parent.bulkexports.v1.exports("Calls").export_custom_jobs.list() == []


def test_delete_job(server, client):
    export = bulk(client).exports("Participants")
    job = export.export_custom_jobs.create(start_day=day(8), end_day=day(3), friendly_name="to delete")
    assert bulk(client).exports.jobs(job.job_sid).delete() is True
    statuses = {g["status"] for g in bulk(client).exports.jobs(job.job_sid).fetch().details}
    assert statuses <= {"DeletedByUserRequest", "RunningToBeDeleted", "Completed", "CompletedEmptyRecords"}
    server.drain()
    after = bulk(client).exports.jobs(job.job_sid).fetch()
    assert after.job_queue_position is None


def test_export_configuration(client):
    conf = bulk(client).export_configuration("Calls")
    assert conf.fetch().enabled is False
    updated = conf.update(enabled=True, webhook_url="https://example.com/hook", webhook_method="POST")
    assert updated.enabled is True and updated.webhook_method == "POST"
    assert conf.fetch().webhook_url == "https://example.com/hook"


def _expect_error(status, code, fn, word=None):
    """Fetch/create/update raise TwilioRestException; list pages raise TwilioException
    carrying the HTTP response, so both are read down to status and Twilio code."""
    with pytest.raises(TwilioException) as e:
        fn()
    if isinstance(e.value, TwilioRestException):
        got_status, got_code, message = e.value.status, e.value.code, e.value.msg
    else:
        response = e.value.args[1]
        body = json.loads(response.text)
        got_status, got_code, message = response.status_code, body["code"], body["message"]
        assert body["status"] == status and body["more_info"].endswith(str(code))
    assert got_status == status, e.value
    assert got_code == code, e.value
    if word:
        assert word in message, message


def test_every_validation_error(server):
    account = server.account("python-validation")
    client = local_client(server.base, account["sid"], account["auth_token"])
    jobs = bulk(client).exports("Messages").export_custom_jobs
    ok = dict(start_day=day(10), end_day=day(9), friendly_name="x")

    def create(**over):
        return lambda: jobs.create(**{**ok, **over})

    _expect_error(400, 20001, create(start_day=None), "StartDay")
    _expect_error(400, 20001, create(end_day=None), "EndDay")
    _expect_error(400, 20001, create(friendly_name=None), "FriendlyName")
    _expect_error(400, 20001, create(start_day="10/01/2024"), "StartDay")
    _expect_error(400, 20001, create(start_day="2023-02-29"), "StartDay")
    _expect_error(400, 20001, create(start_day=day(5), end_day=day(6)), "StartDay")
    _expect_error(400, 20001, create(end_day=day(1)), "EndDay")
    _expect_error(400, 20001, create(webhook_url="https://example.com/h"), "WebhookMethod")
    _expect_error(400, 20001, create(webhook_method="POST"), "WebhookUrl")
    _expect_error(400, 20001, create(webhook_url="https://example.com/h", webhook_method="PUT"), "WebhookMethod")
    _expect_error(400, 20001, create(webhook_url="not a url", webhook_method="GET"), "WebhookUrl")
    _expect_error(400, 20001, create(email="nobody"), "Email")
    _expect_error(400, 20001, lambda: bulk(client).export_configuration("Messages").update(enabled="sometimes"), "Enabled")
    _expect_error(400, 20001, lambda: bulk(client).export_configuration("Messages").update(enabled=True), "Editions")
    _expect_error(413, 20001, create(friendly_name="x" * 100_000), "larger than the limit")
    # Twilio's 20007 "Page size too large", as a plain list(limit=401) meets it.
    _expect_error(400, 20007, lambda: jobs.page(page_size=1001), "PageSize")
    _expect_error(400, 20007, lambda: bulk(client).exports("Messages").days.page(page_size=401), "PageSize")
    _expect_error(400, 20007, lambda: bulk(client).exports("Messages").days.list(limit=401), "PageSize")
    _expect_error(400, 20001, lambda: jobs.get_page(server.base + "/v1/Exports/Messages/Jobs?PageToken=PAforged"), "PageToken")
    assert [(j.start_day, j.end_day, j.webhook_url, j.email) for j in jobs.list()] == [], "nothing was stored"

    _expect_error(404, 20404, lambda: bulk(client).exports("Faxes").export_custom_jobs.list())
    _expect_error(404, 20404, lambda: bulk(client).exports.jobs("JS123").fetch())
    _expect_error(404, 20404, lambda: bulk(client).exports.jobs("JS" + "0" * 32).fetch())
    _expect_error(404, 20404, lambda: bulk(client).exports("Messages").days("2024-13-40").fetch())
    _expect_error(404, 20404, lambda: bulk(client).exports("Messages").days("1999-01-01").fetch())
    other = server.account("python-other")
    theirs = local_client(server.base, other["sid"], other["auth_token"])
    job = jobs.create(**ok)
    _expect_error(404, 20404, lambda: bulk(theirs).exports.jobs(job.job_sid).fetch())
    _expect_error(404, 20404, lambda: bulk(theirs).exports.jobs(job.job_sid).delete())
    bad = local_client(server.base, account["sid"], "wrong-token")
    _expect_error(401, 20003, lambda: bad.bulkexports.v1.exports("Messages").fetch())


class _Hooks:
    """A real HTTP listener on loopback that records webhook requests."""

    def __init__(self):
        import http.server
        import threading
        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _record(self):
                length = int(self.headers.get("Content-Length") or 0)
                received.append((self.command, self.path, dict(self.headers), self.rfile.read(length).decode()))
                self.send_response(204)
                self.end_headers()

            do_GET = do_POST = _record

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def test_webhook_signatures_pass_the_official_validator(server):
    from urllib.parse import parse_qsl
    from twilio.request_validator import RequestValidator

    account = server.account("python-webhooks")
    client = local_client(server.base, account["sid"], account["auth_token"])
    hooks = _Hooks()
    try:
        jobs = bulk(client).exports("Calls").export_custom_jobs
        post = jobs.create(start_day=day(20), end_day=day(19), friendly_name="post hook",
                           webhook_url=hooks.base + "/post?x=1", webhook_method="POST")
        get = jobs.create(start_day=day(20), end_day=day(20), friendly_name="get hook",
                          webhook_url=hooks.base + "/get", webhook_method="GET")
        server.drain()
    finally:
        hooks.close()
    validator = RequestValidator(account["auth_token"])
    by_job = {}
    for method, path, headers, body in hooks.received:
        url = hooks.base + path
        if method == "POST":
            params = dict(parse_qsl(body))
            assert validator.validate(hooks.base + path, params, headers["X-Twilio-Signature"])
        else:
            params = dict(parse_qsl(path.split("?", 1)[1]))
            assert validator.validate(url, {}, headers["X-Twilio-Signature"])
        assert not validator.validate(url, {**params, "Status": "forged"} if method == "POST" else {"x": "y"},
                                      headers["X-Twilio-Signature"])
        assert headers["I-Twilio-Idempotency-Token"]
        by_job[params["JobSid"]] = params
    assert set(by_job) == {post.job_sid, get.job_sid}
    assert by_job[post.job_sid]["Status"] == "Completed"
    assert by_job[post.job_sid]["AccountSid"] == account["sid"]
    assert by_job[get.job_sid]["FriendlyName"] == "get hook"


def test_archived_calls_and_the_call_resource(tmp_path):
    from server import Server
    srv = Server(args=["--clock", "2024-06-10T12:00:00Z"])
    try:
        acct = srv.account("python-calls")
        client = local_client(srv.base, acct["sid"], acct["auth_token"])
        path = os.path.join(tmp_path, "calls.ndjson")
        sids = ["CA%032x" % (i + 1) for i in range(4)]
        with open(path, "w") as f:
            for i, sid in enumerate(sids):
                f.write(json.dumps({"sid": sid, "date_created": f"Wed, 05 Jun 2024 0{i}:00:00 +0000",
                                    "status": "completed", "duration": "42"}) + "\n")
        srv.cli("ingest", "--account", acct["sid"], "--resource-type", "Calls", path)
        calls = client.bulkexports.v1.exports("Calls")
        calls.export_custom_jobs.create(start_day="2024-06-05", end_day="2024-06-05", friendly_name="calls")
        srv.drain()

        call = client.calls(sids[0]).fetch()
        assert call.sid == sids[0] and call.duration == "42"
        assert [c.sid for c in client.calls.list(page_size=2)] == list(reversed(sids))

        assert client.voice.v1.archived_calls("2024-06-05", sids[0]).delete() is True
        assert client.voice.v1.archived_calls("2024-06-05", sids[0]).delete() is True
        _expect_error(404, 20404, lambda: client.voice.v1.archived_calls("2024-06-04", sids[1]).delete())
        _expect_error(404, 20404, lambda: client.voice.v1.archived_calls("2024-06-05", "CA123").delete())
        assert client.calls(sids[1]).delete() is True
        _expect_error(404, 20404, lambda: client.calls(sids[1]).fetch())

        srv.admin("/admin/v1/Clock", Now="2024-06-10T13:00:01Z")
        srv.drain()
        link = calls.days("2024-06-05").fetch().redirect_to
        with urllib.request.urlopen(link) as r:
            got = [json.loads(line)["sid"] for line in gzip.decompress(r.read()).decode().splitlines()]
        assert got == sids[2:], "both deleted records are gone from the rewritten file"
        assert client.calls(sids[0]).fetch().sid == sids[0], "a recent call's resource stays"
    finally:
        srv.stop()
