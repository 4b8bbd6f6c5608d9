"""The client side of bench/scale.sh: fills a running service over HTTP with
16 concurrent clients and reports latencies as JSON on stdout.

  scale.py accounts BASE ADMIN_TOKEN COUNT OUT   1,000 accounts: a tenth are
      subaccounts of the account before them, a fifth also get an API key;
      their credentials go to OUT (JSON)
  scale.py jobs BASE CREDS COUNT FIRST_DAY      COUNT one-day custom jobs,
      round-robin over the accounts (with their key when they have one), each
      round on the next day and resource type; prints the creates' latency
      (median, p99, ms) and the last job made
  scale.py probe BASE USER PASSWORD PATH STOP   GETs of PATH from 4 clients,
      about 200 a second in all, until the file STOP exists; their latency
  scale.py tenants BASE ADMIN_TOKEN COUNT OUT   COUNT Editions accounts, each
      with the daily export of all four resource types enabled; their
      credentials go to OUT
"""

import base64
import datetime
import http.client
import json
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

CLIENTS = 16
TYPES = ["Messages", "Calls", "Conferences", "Participants"]
local = threading.local()


def request(base, method, path, auth, form=None):
    """One request on this thread's kept-alive connection: (status, body, seconds)."""
    url = urllib.parse.urlparse(base)
    if getattr(local, "conn", None) is None:
        local.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    headers = {"Authorization": auth}
    body = None
    if form is not None:
        body = urllib.parse.urlencode(form)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    started = time.perf_counter()
    try:
        local.conn.request(method, path, body=body, headers=headers)
        r = local.conn.getresponse()
        data = r.read()
    except (http.client.HTTPException, OSError):
        local.conn.close()
        local.conn = None
        raise
    elapsed = time.perf_counter() - started
    if r.status >= 300:
        raise SystemExit(f"{method} {path}: {r.status} {data[:300]!r}")
    return r.status, json.loads(data) if data else None, elapsed


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def bearer(token):
    return f"Bearer {token}"


def run_all(fn, items):
    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(fn, items))


def summary(seconds):
    ms = sorted(s * 1000 for s in seconds)
    return {
        "count": len(ms),
        "median": round(ms[len(ms) // 2], 2),
        "p99": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2),
    }


def accounts(base, admin, count, out):
    def make(i):
        form = {"FriendlyName": f"scale-{i}"}
        if i % 10 == 9:
            form["ParentSid"] = parents[i - 1]
        _, acct, _ = request(base, "POST", "/admin/v1/Accounts", bearer(admin), form)
        cred = {"sid": acct["sid"], "user": acct["sid"], "password": acct["auth_token"]}
        if i % 5 == 0:
            path = f"/admin/v1/Accounts/{acct['sid']}/Keys"
            _, key, _ = request(base, "POST", path, bearer(admin), {"FriendlyName": "k"})
            cred.update(user=key["sid"], password=key["secret"])
        return cred

    # Parents first: every tenth account is a subaccount of the one before it.
    parents = {}
    creds = []
    for start in range(0, count, 10):
        batch = list(range(start, min(start + 10, count)))
        made = run_all(make, [i for i in batch if i % 10 != 9])
        for i, c in zip([i for i in batch if i % 10 != 9], made):
            parents[i] = c["sid"]
            creds.append(c)
        creds += [make(i) for i in batch if i % 10 == 9]
    with open(out, "w") as f:
        json.dump(creds, f)


def jobs(base, creds_file, count, first_day):
    creds = json.load(open(creds_file))
    day0 = datetime.date.fromisoformat(first_day)

    def make(i):
        c = creds[i % len(creds)]
        rounds = i // len(creds)
        day = (day0 + datetime.timedelta(days=rounds % 300)).isoformat()
        form = {"StartDay": day, "EndDay": day, "FriendlyName": f"job-{i}"}
        rt = TYPES[rounds % 4]
        _, job, seconds = request(base, "POST", f"/v1/Exports/{rt}/Jobs", basic(c["user"], c["password"]), form)
        return seconds, {"sid": job["job_sid"], "type": rt, "user": c["user"], "password": c["password"]}

    done = run_all(make, range(count))
    report = summary([seconds for seconds, _ in done])
    report["last"] = done[-1][1]
    print(json.dumps(report))


def tenants(base, admin, count, out):
    def make(i):
        form = {"FriendlyName": f"tenant-{i}", "Editions": "true"}
        _, acct, _ = request(base, "POST", "/admin/v1/Accounts", bearer(admin), form)
        auth = basic(acct["sid"], acct["auth_token"])
        for rt in TYPES:
            request(base, "POST", f"/v1/Exports/{rt}/Configuration", auth, {"Enabled": "true"})
        return {"user": acct["sid"], "password": acct["auth_token"]}

    with open(out, "w") as f:
        json.dump(run_all(make, range(count)), f)


def probe(base, user, password, path, stop_file):
    """FetchJob-like GETs from 4 clients, each about 50 a second (a steady
    load, not a flood), until STOP_FILE exists; prints their latency."""
    import os

    auth = basic(user, password)

    def client(_):
        seconds = []
        while not os.path.exists(stop_file):
            seconds.append(request(base, "GET", path, auth)[2])
            time.sleep(0.02)
        return seconds

    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(client, range(4)))
    print(json.dumps(summary([s for c in done for s in c])))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "accounts":
        accounts(args[0], args[1], int(args[2]), args[3])
    elif cmd == "jobs":
        jobs(args[0], args[1], int(args[2]), args[3])
    elif cmd == "probe":
        probe(*args)
    elif cmd == "tenants":
        tenants(args[0], args[1], int(args[2]), args[3])
    else:
        raise SystemExit(__doc__)
