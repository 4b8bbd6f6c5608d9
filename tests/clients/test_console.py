"""The console in a real browser: Debian's Chromium driven by Playwright.

One walk through what a user does: sign in, create a job from the form, see
it complete without reloading, preview and download its day, see the signed
webhook, then the operator's faults; and what must not work: a wrong token,
another account's page by URL, a form without its CSRF token. Screenshots of
the main pages land in target/console-screenshots/ (look at them).
"""
import gzip
import http.server
import json
import os
import re
import shutil
import threading
import urllib.error
import urllib.parse
import urllib.request

import pytest
from playwright.sync_api import expect, sync_playwright
from twilio.base.exceptions import TwilioException

from bulkexport_local import local_client
from server import ADMIN, ROOT, Server

SID = "AC00000000000000000000000000000001"
TOKEN = "0123456789abcdef0123456789abcdef"
OTHER = "AC00000000000000000000000000000002"
OTHER_TOKEN = "fedcba9876543210fedcba9876543210"
FIXTURES = f"""
[[accounts]]
sid = "{SID}"
auth_token = "{TOKEN}"
friendly_name = "console-suite"
  [[accounts.seed]]
  resource_type = "Messages"
  start_day = "2026-01-01"
  end_day = "2026-01-02"
  per_day = 40

[[accounts]]
sid = "{OTHER}"
auth_token = "{OTHER_TOKEN}"
friendly_name = "someone-else"
"""
SHOTS = os.path.join(ROOT, "target", "console-screenshots")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class Hooks(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    path = os.path.join(tmp_path_factory.mktemp("fixtures"), "fixtures.toml")
    with open(path, "w") as f:
        f.write(FIXTURES)
    s = Server(args=("--fixtures", path, "--clock", "2026-01-10T00:00:00Z"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def hook_url():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/hook"
    srv.shutdown()


@pytest.fixture(scope="module")
def browser():
    os.makedirs(SHOTS, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    errors = []
    # A Content-Security-Policy violation or a script error is an error
    # message; an answer of 4xx the test provokes is not counted.
    pg.on("console", lambda m: errors.append(m.text)
          if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
    yield pg
    context.close()
    assert errors == [], errors


def shot(pg, name):
    pg.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def sign_in(pg, base, sid, token):
    pg.goto(base + "/console")
    pg.get_by_label("Account SID").fill(sid)
    pg.get_by_label("Auth token").fill(token)
    pg.get_by_role("button", name="Sign in", exact=True).click()


def first_record_sid(base, day):
    bulk = local_client(base, SID, TOKEN).bulkexports.v1
    link = bulk.exports("Messages").days(day).fetch().redirect_to
    with urllib.request.urlopen(link) as r:
        return json.loads(gzip.decompress(r.read()).splitlines()[0])["sid"]


def test_an_account_creates_a_job_watches_it_complete_and_reads_its_day(server, hook_url, page):
    base = server.base
    sign_in(page, base, SID, TOKEN)
    expect(page.get_by_role("heading", name="Jobs · Messages")).to_be_visible()
    page.get_by_label("Resource type").select_option("Messages")
    page.get_by_label("Start day").fill("2026-01-01")
    page.get_by_label("End day").fill("2026-01-01")
    page.get_by_label("Friendly name").fill("from-the-console")
    page.get_by_label("Webhook URL").fill(hook_url)
    page.get_by_label("Webhook method").select_option("POST")
    page.get_by_role("button", name="Create job").click()
    jobs = page.locator("table.jobs")
    expect(jobs).to_contain_text("from-the-console")
    server.drain()
    # No reload: the page's own script refreshes the table while days are under way.
    expect(jobs).to_contain_text("Completed", timeout=20_000)
    expect(page.locator("p.quota")).to_contain_text("Days requested today: 1 of 366")
    shot(page, "jobs")

    # A form error is shown in place, and nothing is created.
    page.get_by_label("Start day").fill("2026-02-30")
    page.get_by_label("End day").fill("2026-01-01")
    page.get_by_label("Friendly name").fill("bad")
    page.get_by_role("button", name="Create job").click()
    expect(page.locator("form p.error")).to_contain_text("StartDay")
    expect(page.get_by_label("Friendly name")).to_have_value("bad")

    page.get_by_role("link", name="Days", exact=True).click()
    row = page.locator("table.days tr", has_text="2026-01-01")
    expect(row).to_contain_text("from-the-console")
    expect(row).to_contain_text("40")
    shot(page, "days")
    with page.expect_download() as download:
        row.get_by_role("link", name="Download").click()
    with open(download.value.path(), "rb") as f:
        assert len(gzip.decompress(f.read()).splitlines()) == 40

    row.get_by_role("link", name="Preview").click()
    expect(page.locator("table.preview")).to_contain_text(first_record_sid(base, "2026-01-01"))
    assert page.locator("table.preview tbody tr").count() == 40
    shot(page, "preview")

    page.get_by_role("link", name="Notifications").click()
    expect(page.locator("section.note").first).to_contain_text("signature valid", timeout=20_000)
    expect(page.locator("section.note").first).to_contain_text("delivered")
    shot(page, "notifications")


def test_the_operator_creates_a_fault_from_the_form_and_sees_it_fire(server, page):
    page.goto(server.base + "/console")
    page.get_by_label("Admin token").fill(ADMIN)
    page.get_by_role("button", name="Sign in as admin").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.locator("main")).to_contain_text("Oldest queued day's age")
    shot(page, "admin-overview")
    page.get_by_label("Advance").fill("1h")
    page.get_by_role("button", name="Move clock").click()
    expect(page.locator("main")).to_contain_text("The service clock reads 2026-01-10T01:")
    page.get_by_role("link", name="Faults").click()
    page.get_by_label("Kind").select_option("ApiError")
    page.get_by_label("Operation").fill("ListDay")
    page.get_by_label("Status").fill("503")
    page.get_by_label("Times").fill("1")
    page.get_by_role("button", name="Create fault").click()
    rule = page.locator("table tr", has_text="ListDay")
    expect(rule.locator("td.fired")).to_have_text("0")
    bulk = local_client(server.base, SID, TOKEN).bulkexports.v1
    with pytest.raises(TwilioException) as refused:
        bulk.exports("Messages").days.list()
    assert "Injected fault" in str(refused.value)
    page.reload()
    expect(rule.locator("td.fired")).to_have_text("1")
    shot(page, "faults")
    page.get_by_role("link", name="Accounts").click()
    expect(page.locator("table.accounts")).to_contain_text(OTHER)
    page.get_by_label("Friendly name").first.fill("made-in-the-console")
    page.get_by_label("Editions").check()
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("div.created")).to_contain_text("Auth token")
    expect(page.locator("table.accounts")).to_contain_text("made-in-the-console")
    page.get_by_role("link", name="Requests").click()
    expect(page.locator("main table")).to_contain_text("ListDay")


def test_a_wrong_token_another_accounts_page_and_a_forged_form_are_refused(server, page):
    sign_in(page, server.base, SID, "0" * 32)
    expect(page.locator("p.error")).to_contain_text("do not match")
    page.goto(server.base + "/console")
    page.get_by_label("Admin token").fill("not-the-admin-token")
    page.get_by_role("button", name="Sign in as admin").click()
    expect(page.locator("p.error")).to_contain_text("not right")

    sign_in(page, server.base, OTHER, OTHER_TOKEN)
    expect(page.get_by_role("heading", name="Jobs · Messages")).to_be_visible()
    preview = f"{server.base}/console/accounts/{SID}/days/Messages/2026-01-02"
    answer = page.goto(preview)
    assert answer.status == 404
    expect(page.locator("p.error")).to_contain_text("There is no such page")
    assert page.goto(f"{server.base}/console/admin").url.endswith("/console/admin")
    expect(page.locator("p.error")).to_contain_text("operator's")

    # A form posted from elsewhere (no session, no token) changes nothing.
    data = urllib.parse.urlencode({"account_sid": SID, "auth_token": TOKEN}).encode()
    with pytest.raises(urllib.error.HTTPError) as forged:
        urllib.request.urlopen(urllib.request.Request(server.base + "/console/sign-in", data=data))
    assert forged.value.code == 403
    assert "default-src 'none'" in forged.value.headers["Content-Security-Policy"]


def test_a_new_user_of_the_demo_finds_its_job_days_and_records(page):
    demo = Server(args=["--demo"])
    try:
        with open(demo.log.name) as f:
            printed = f.read()
        assert f"open {demo.base}/console and sign in" in printed
        sid = re.search(r"account_sid = (AC[0-9a-f]{32})", printed).group(1)
        token = re.search(r"auth_token  = (\S+)", printed).group(1)
        demo.drain()
        sign_in(page, demo.base, sid, token)
        expect(page.locator("table.jobs")).to_contain_text("demo")
        expect(page.locator("table.jobs")).to_contain_text("Completed")
        shot(page, "demo-jobs")
        page.get_by_role("link", name="Days", exact=True).click()
        rows = page.locator("table.days tbody tr")
        expect(rows).to_have_count(7)
        expect(rows.first).to_contain_text("500")
        rows.first.get_by_role("link", name="Preview").click()
        expect(page.locator("table.preview tbody tr")).to_have_count(50)
        expect(page.locator("table.preview thead")).to_contain_text("sid")
    finally:
        demo.stop()
