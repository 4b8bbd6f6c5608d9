"""A real Prometheus server scrapes /metrics while a job runs; its HTTP API
then says what an operator's dashboards and alerts would read.

The test command installs Debian's `prometheus` package; PROMETHEUS_BIN
names another binary.
"""
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

import pytest

from bulkexport_local import local_client
from server import Server, day, free_port

PROMETHEUS = os.environ.get("PROMETHEUS_BIN") or shutil.which("prometheus") or "/usr/bin/prometheus"


@pytest.fixture(scope="module")
def prometheus_and_server():
    if not os.path.exists(PROMETHEUS):
        pytest.fail(f"no Prometheus server at {PROMETHEUS}: scripts/test.sh installs Debian's prometheus package")
    server = Server()
    workdir = tempfile.mkdtemp(prefix="bulkexport-prometheus-")
    config = os.path.join(workdir, "prometheus.yml")
    with open(config, "w") as f:
        f.write(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: bulkexport\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{server.port}']\n"
        )
    port = free_port()
    log = open(os.path.join(workdir, "prometheus.log"), "w")
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={workdir}/data",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: get(base + "/-/ready")[0] == 200, "Prometheus ready", proc, log)
        yield base, server
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except OSError:
        return None, b""


def query(base, promql):
    """The instant vector of `promql` as {labels: value}."""
    status, body = get(base + "/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    assert status == 200, body
    result = json.loads(body)["data"]["result"]
    return {json.dumps(r["metric"], sort_keys=True): float(r["value"][1]) for r in result}


def wait_for(condition, what, proc=None, log=None, timeout=60):
    # Prometheus scrapes on its own schedule (every second here) and has no
    # call that scrapes now: this waits for its next scrapes, never for the
    # service's work, which the test drains.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"Prometheus exited: {open(log.name).read()}")
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def scalar(base, promql):
    values = list(query(base, promql).values())
    return values[0] if values else None


def test_prometheus_sees_day_exports_rise_and_completed_days(prometheus_and_server):
    base, server = prometheus_and_server
    account = server.account("prometheus")
    server.cli("seed", "--account", account["sid"], "--resource-type", "Messages",
               "--start-day", day(6), "--end-day", day(5), "--per-day", "50")
    wait_for(lambda: scalar(base, 'up{job="bulkexport"}') == 1.0, "a first scrape")
    before = scalar(base, 'sum(bulkexport_day_exports_total{outcome="completed"})')
    assert before == 0.0

    client = local_client(server.base, account["sid"], account["auth_token"])
    job = client.bulkexports.v1.exports("Messages").export_custom_jobs.create(
        start_day=day(6), end_day=day(4), friendly_name="scraped")
    server.drain()
    client.bulkexports.v1.exports.jobs(job.job_sid).fetch()

    wait_for(lambda: scalar(base, 'sum(bulkexport_day_exports_total{outcome="completed"})') == 2.0,
             "the completed exports in Prometheus")
    assert scalar(base, 'bulkexport_day_exports_total{resource_type="Messages",outcome="empty"}') == 1.0
    wait_for(lambda: scalar(base, 'bulkexport_job_days{status="Completed"}') == 2.0, "the Completed days")
    assert scalar(base, 'bulkexport_job_days{status="CompletedEmptyRecords"}') == 1.0
    assert scalar(base, 'bulkexport_job_days{status="Submitted"}') == 0.0
    assert scalar(base, "bulkexport_queue_oldest_age_seconds") == 0.0
    # The counter rose over the window Prometheus holds.
    assert scalar(base, 'sum(increase(bulkexport_day_exports_total{outcome="completed"}[5m]))') > 0
    assert scalar(base, 'sum(bulkexport_day_export_records_total{resource_type="Messages"})') == 100.0

    # The request that fetched the job is counted under its route template, never its SID.
    wait_for(lambda: scalar(base, 'sum(bulkexport_http_requests_total{route="/v1/Exports/Jobs/{JobSid}"})'),
             "the FetchJob request in Prometheus")
    status, body = get(base + "/api/v1/label/route/values")
    routes = json.loads(body)["data"]
    assert "/v1/Exports/{ResourceType}/Jobs" in routes
    assert not [r for r in routes if job.job_sid in r or account["sid"] in r], routes
    assert scalar(base, 'count(bulkexport_build_info{database!="",storage!="",version!=""})') == 1.0
