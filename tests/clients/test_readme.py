"""The README's client examples, run as a new user pastes them, against `serve --demo`."""
import datetime as dt
import os
import re
import subprocess
import sys

import pytest

from bulkexport_local import local_client
from server import ROOT, Server


def blocks(lang):
    with open(os.path.join(ROOT, "README.md")) as f:
        return re.findall(rf"```{lang}\n(.*?)```", f.read(), re.S)


@pytest.fixture(scope="module")
def demo():
    s = Server(args=["--demo"])
    with open(s.log.name) as f:
        printed = f.read()
    sid = re.search(r"account_sid = (AC[0-9a-f]{32})", printed).group(1)
    token = re.search(r"auth_token  = (\S+)", printed).group(1)
    env = dict(os.environ, TWILIO_ACCOUNT_SID=sid, TWILIO_AUTH_TOKEN=token)
    yield s, env
    s.stop()


def run(cmd, env):
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, f"{out.stdout}\n{out.stderr}"
    return out.stdout


def test_the_python_example_creates_a_job_and_reads_its_day(demo):
    server, env = demo
    code = blocks("python")[0].replace("http://127.0.0.1:8080", server.base)
    printed = run([sys.executable, "-c", code], env)
    # The demo seeds 500 Messages a day.
    assert re.fullmatch(r"500 messages on \d{4}-\d{2}-\d{2}\n", printed), printed


def test_the_node_example_lists_the_jobs(demo, tmp_path):
    server, env = demo
    client = local_client(server.base, env["TWILIO_ACCOUNT_SID"], env["TWILIO_AUTH_TOKEN"])
    day = (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=3)).isoformat()
    job = client.bulkexports.v1.exports("Messages").export_custom_jobs.create(
        start_day=day, end_day=day, friendly_name="listed")
    code = blocks("js")[0].replace("http://127.0.0.1:8080", server.base)
    script = tmp_path / "example.js"
    script.write_text(code)
    printed = run(["node", str(script)], env)
    assert re.search(rf"^{job.job_sid} listed \[", printed, re.M), printed
