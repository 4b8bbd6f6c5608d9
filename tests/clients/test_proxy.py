"""The official clients, unmodified, through the proxy mode (`serve --proxy-listen`):
only environment variables point them at bulkexport. Each client is a separate
process running a user's script (tests/clients/proxy/) or the stock twilio CLI."""
import base64
import gzip
import json
import os
import socket
import subprocess
import sys
import urllib.request

import pytest
import requests

from server import BIN, Server, day, free_port

HERE = os.path.dirname(os.path.abspath(__file__))
USERS = os.path.join(HERE, "proxy")
NODE_MODULES = os.path.join(HERE, "node", "node_modules")
TWILIO_CLI = os.path.join(HERE, "cli", "node_modules", ".bin", "twilio")
CANONICAL = "https://bulkexports.twilio.com"
PER_DAY = 7
# A job deleted right after it is created may already have run (workers are idle).
DELETED = {"DeletedByUserRequest", "RunningToBeDeleted", "Completed"}
# Variables of this machine that would otherwise steer the clients.
CLEARED = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY",
           "no_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR",
           "NODE_EXTRA_CA_CERTS", "TWILIO_REGION", "TWILIO_EDGE", "NODE_OPTIONS")


@pytest.fixture(scope="module")
def proxied():
    port = free_port()
    s = Server(args=["--proxy-listen", f"127.0.0.1:{port}"])
    s.proxy = f"http://127.0.0.1:{port}"
    s.ca = subprocess.run([BIN, "--data-dir", s.dir, "ca", "path"], check=True, capture_output=True,
                          text=True).stdout.strip()
    yield s
    s.stop()


def seeded_account(server, name):
    account = server.account(name)
    server.cli("seed", "--account", account["sid"], "--resource-type", "Messages",
               "--start-day", day(4), "--end-day", day(2), "--per-day", str(PER_DAY))
    return account


def user_env(server, account, **variables):
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env.update(TWILIO_ACCOUNT_SID=account["sid"], TWILIO_AUTH_TOKEN=account["auth_token"], **variables)
    return env


def run(cmd, env):
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"{cmd} failed:\n{out.stdout}\n{out.stderr}"
    return json.loads(out.stdout)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def direct(server, account, path):
    """The same request straight to the service's own listener (redirects not followed)."""
    auth = base64.b64encode(f"{account['sid']}:{account['auth_token']}".encode()).decode()
    req = urllib.request.Request(server.base + path, headers={"Authorization": f"Basic {auth}"})
    try:
        with urllib.request.build_opener(_NoRedirect).open(req, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def direct_sids(server, account, d):
    _, body = direct(server, account, f"/v1/Exports/Messages/Days/{d}")
    with urllib.request.urlopen(body["redirect_to"], timeout=30) as r:
        lines = gzip.decompress(r.read()).decode().splitlines()
    return [json.loads(line)["sid"] for line in lines]


def check_results(server, account, jobs, result):
    assert result["status"] == "Completed"
    assert result["job_url"] == f"{CANONICAL}/v1/Exports/Jobs/{jobs[1]}"
    assert sorted(result["jobs"]) == sorted(jobs)
    assert sorted(result["days"]) == [day(4), day(3), day(2)]
    assert result["link"].startswith(f"{CANONICAL}/v1/Downloads/")
    assert len(result["sids"]) == PER_DAY
    assert result["sids"] == direct_sids(server, account, day(4))
    assert result["deleted"] is True, "the DELETE went through the proxy and was answered 204"
    assert set(result["deleted_statuses"]) <= DELETED


def test_twilio_python_with_https_proxy_and_requests_ca_bundle(proxied):
    account = seeded_account(proxied, "proxy-python")
    env = user_env(proxied, account, HTTPS_PROXY=proxied.proxy, REQUESTS_CA_BUNDLE=proxied.ca)
    script = os.path.join(USERS, "python_user.py")
    jobs = run([sys.executable, script, "create", day(4), day(2)], env)["jobs"]
    proxied.drain()
    check_results(proxied, account, jobs, run([sys.executable, script, "check", jobs[1], day(4)], env))


def test_twilio_node_with_http_proxy_and_node_extra_ca_certs(proxied):
    account = seeded_account(proxied, "proxy-node")
    env = user_env(proxied, account, HTTP_PROXY=proxied.proxy, NODE_EXTRA_CA_CERTS=proxied.ca,
                   NODE_PATH=NODE_MODULES)
    script = os.path.join(USERS, "node_user.js")
    jobs = run(["node", script, "create", day(4), day(2)], env)["jobs"]
    proxied.drain()
    check_results(proxied, account, jobs, run(["node", script, "check", jobs[1], day(4)], env))


def test_stock_twilio_cli_with_http_proxy_and_node_extra_ca_certs(proxied, tmp_path):
    account = seeded_account(proxied, "proxy-cli")
    env = user_env(proxied, account, HTTP_PROXY=proxied.proxy, NODE_EXTRA_CA_CERTS=proxied.ca,
                   TWILIO_SKIP_NEW_VERSION_CHECK="true", HOME=str(tmp_path))

    def twilio(*args):
        return run([TWILIO_CLI, *args, "-o", "json"], env)

    jobs = [twilio("api:bulkexports:v1:exports:jobs:create", "--resource-type", "Messages",
                   "--start-day", day(4), "--end-day", end, "--friendly-name", f"cli-{i}")[0]["jobSid"]
            for i, end in enumerate([day(4), day(2)])]
    proxied.drain()
    listed = twilio("api:bulkexports:v1:exports:jobs:list", "--resource-type", "Messages", "--page-size", "1")
    assert sorted(j["jobSid"] for j in listed) == sorted(jobs)
    days = twilio("api:bulkexports:v1:exports:days:list", "--resource-type", "Messages", "--page-size", "1")
    assert sorted(d["day"] for d in days) == [day(4), day(3), day(2)]
    fetched = twilio("api:bulkexports:v1:exports:days:fetch", "--resource-type", "Messages", "--day", day(4))
    link = fetched[0]["redirect_to"] if "redirect_to" in fetched[0] else fetched[0]["redirectTo"]
    assert link.startswith(f"{CANONICAL}/v1/Downloads/")
    # Downloading as a CLI user would: curl, with the same proxy and CA.
    curl = subprocess.run(["curl", "-sf", link], env=dict(env, HTTPS_PROXY=proxied.proxy, CURL_CA_BUNDLE=proxied.ca),
                          capture_output=True, timeout=60, check=True)
    sids = [json.loads(line)["sid"] for line in gzip.decompress(curl.stdout).decode().splitlines()]
    assert sids == direct_sids(proxied, account, day(4))
    # A job removed before it runs: its days end DeletedByUserRequest.
    doomed = twilio("api:bulkexports:v1:exports:jobs:create", "--resource-type", "Messages", "--start-day", day(4),
                    "--end-day", day(4), "--friendly-name", "cli-3")[0]["jobSid"]
    out = subprocess.run([TWILIO_CLI, "api:bulkexports:v1:exports:jobs:remove", "--job-sid", doomed], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    after = twilio("api:bulkexports:v1:exports:jobs:fetch", "--job-sid", doomed)
    assert {d["status"] for d in after[0]["details"]} <= DELETED


PRELOAD = os.path.join(os.path.dirname(os.path.dirname(HERE)), "clients", "twilio-local-preload.js")


def test_stock_twilio_cli_with_the_repositorys_preload(proxied, tmp_path):
    """The README's other way for twilio-cli: no proxy, clients/twilio-local-preload.js."""
    account = seeded_account(proxied, "preload-cli")
    env = user_env(proxied, account, TWILIO_LOCAL_BASE_URL=proxied.base, NODE_OPTIONS=f"--require {PRELOAD}",
                   TWILIO_SKIP_NEW_VERSION_CHECK="true", HOME=str(tmp_path))
    created = run([TWILIO_CLI, "api:bulkexports:v1:exports:jobs:create", "--resource-type", "Messages",
                   "--start-day", day(4), "--end-day", day(4), "--friendly-name", "preload", "-o", "json"], env)
    listed = run([TWILIO_CLI, "api:bulkexports:v1:exports:jobs:list", "--resource-type", "Messages", "-o", "json"],
                 env)
    assert [j["jobSid"] for j in listed] == [created[0]["jobSid"]]


def test_connect_to_any_other_host_is_refused(proxied):
    host, port = proxied.proxy.removeprefix("http://").split(":")
    for target in ["example.com:443", "api.twilio.com:443", "studio.twilio.com:443", "bulkexports.twilio.com:22"]:
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
            reply = s.recv(4096).decode()
        assert reply.startswith("HTTP/1.1 403"), (target, reply)
    with pytest.raises(requests.exceptions.ProxyError):
        requests.get("https://api.twilio.com/2010-04-01/Accounts.json", timeout=10, verify=proxied.ca,
                     proxies={"https": proxied.proxy})
