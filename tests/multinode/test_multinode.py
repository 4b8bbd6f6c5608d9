"""Three `bulkexport serve` nodes over one PostgreSQL database and one S3 bucket.

20 jobs of several days are submitted through the official Python client, round
robin over the nodes; one node is SIGKILLed while it holds a lease. The other
nodes take its work over once the lease expires. Then every job must be
complete, every Day file byte-correct and present exactly once, no object in
the bucket may be left unreferenced, and every job's webhook must have been
delivered at least once, with one idempotency token per delivery."""
import gzip
import json
import os
import signal
import subprocess
import sys
import urllib.request

import boto3
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "clients"))
sys.path.insert(0, os.path.abspath(os.path.join(HERE, "..", "..", "clients")))

from bulkexport_local import local_client  # noqa: E402
from records import day_file_shape, file_order, iso, rest_messages, write_ndjson  # noqa: E402
from server import ADMIN, BIN, day, free_port  # noqa: E402
from test_python import _Hooks  # noqa: E402

PG = os.environ.get("BULKEXPORT_TEST_POSTGRES_URL")
BUCKET = os.environ.get("BULKEXPORT_TEST_S3_BUCKET")
NODES = 3
JOBS = 20
RECORDS_PER_DAY = 15000
SEEDED_DAYS = [day(9), day(8), day(7)]


def psql(url, sql):
    out = subprocess.run(["psql", url, "-Atc", sql], check=True, capture_output=True, text=True)
    return out.stdout.strip()


class Node:
    def __init__(self, n, env, tmp):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(tmp, f"node{n}.log"), "w")
        self.proc = subprocess.Popen([BIN, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", tmp],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self):
        import time
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.base + "/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)  # start-up: waiting for the process to bind
        raise RuntimeError("node did not become ready")

    def drain(self):
        req = urllib.request.Request(self.base + "/admin/v1/Queue/Drain?TimeoutSeconds=300", data=b"", method="POST",
                                     headers={"Authorization": f"Bearer {ADMIN}"})
        with urllib.request.urlopen(req, timeout=330) as r:
            assert json.load(r)["idle"] is True


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not (PG and BUCKET):
        pytest.fail("the multi-node test needs BULKEXPORT_TEST_POSTGRES_URL and BULKEXPORT_TEST_S3_BUCKET "
                    "(scripts/test.sh starts both)")
    tmp = str(tmp_path_factory.mktemp("multinode"))
    name = "multinode_" + os.urandom(4).hex()
    psql(PG, f"CREATE DATABASE {name}")
    db_url = PG.rsplit("/", 1)[0] + "/" + name
    env = dict(os.environ, BULKEXPORT_DATABASE_URL=db_url, BULKEXPORT_STORAGE_URL=f"s3://{BUCKET}/{name}",
               BULKEXPORT_ADMIN_TOKEN=ADMIN, BULKEXPORT_WORKERS="2", BULKEXPORT_LEASE_SECS="3",
               BULKEXPORT_POLL_MS="50", RUST_LOG="warn")
    subprocess.run([BIN, "migrate"], env=env, check=True, capture_output=True)
    nodes = [Node(n, env, tmp) for n in range(NODES)]
    for n in nodes:
        n.wait_ready()
    yield {"nodes": nodes, "env": env, "db": db_url, "tmp": tmp, "prefix": name + "/"}
    for n in nodes:
        if n.proc.poll() is None:
            n.proc.terminate()
            n.proc.wait(timeout=30)


def test_three_nodes_share_the_work_and_survive_a_sigkill(cluster):
    nodes, env, db, tmp, prefix = cluster["nodes"], cluster["env"], cluster["db"], cluster["tmp"], cluster["prefix"]
    account = json.loads(subprocess.run([BIN, "accounts", "create", "--friendly-name", "multinode"], env=env,
                                        check=True, capture_output=True, text=True).stdout)
    rest = [r for i, d in enumerate(SEEDED_DAYS) for r in rest_messages(account["sid"], d, RECORDS_PER_DAY, seed=10 + i)]
    path = os.path.join(tmp, "messages.ndjson")
    write_ndjson(path, rest)
    report = json.loads(subprocess.run([BIN, "ingest", "--account", account["sid"], "--resource-type", "Messages", path],
                                       env=env, check=True, capture_output=True, text=True).stdout)
    assert report["loaded"] == len(rest)

    hooks = _Hooks()
    clients = [local_client(n.base, account["sid"], account["auth_token"]) for n in nodes]
    jobs = []
    for i in range(JOBS):
        c = clients[i % NODES]
        start, end = (day(9), day(7)) if i % 2 == 0 else (day(10 + i % 3), day(7))
        jobs.append(c.bulkexports.v1.exports("Messages").export_custom_jobs.create(
            start_day=start, end_day=end, friendly_name=f"job{i}",
            webhook_url=f"{hooks.base}/done/{i}", webhook_method="POST").job_sid)

    # Queue positions agree across nodes and follow submission order. The
    # nodes are working meanwhile and a job's position only ever drops, so the
    # jobs are read newest first: then each unfinished job's position is below
    # that of every later one, read before it.
    positions = [0] * len(jobs)
    for i in reversed(range(len(jobs))):
        p = clients[(i + 1) % NODES].bulkexports.v1.exports.jobs(jobs[i]).fetch().job_queue_position
        positions[i] = int(p) if p is not None else 0
    unfinished = [p for p in positions if p]
    assert unfinished == sorted(set(unfinished)), positions

    # Find a node that holds a lease right now and SIGKILL it.
    pids = {n.proc.pid: n for n in nodes}
    victim = None
    while victim is None:
        held = psql(db, "SELECT locked_by FROM job_days WHERE status = 'Running'")
        if not held and psql(db, "SELECT COUNT(*) FROM job_days WHERE status IN ('Submitted', 'Running')") == "0":
            pytest.fail("all work finished before a node could be killed; make the days larger")
        for worker in held.splitlines():
            pid = int(worker.rsplit("-", 2)[-2])
            if pid in pids:
                victim = pids[pid]
                break
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()
    orphaned = psql(db, f"SELECT COUNT(*) FROM job_days WHERE status = 'Running' AND locked_by LIKE '%-{victim.proc.pid}-%'")
    assert int(orphaned) >= 1, "the killed node held work when it died"

    survivors = [n for n in nodes if n is not victim]
    survivors[0].drain()

    # Every job complete, each day exactly once per job, no doubled or lost status.
    c = local_client(survivors[1].base, account["sid"], account["auth_token"])
    for sid in jobs:
        job = c.bulkexports.v1.exports.jobs(sid).fetch()
        days = [d for g in job.details for d in g["days"]]
        assert sorted(days) == sorted(set(days)), job.details
        statuses = {g["status"] for g in job.details}
        assert statuses <= {"Completed", "CompletedEmptyRecords"}, job.details
        assert job.job_queue_position is None
    # A takeover counts towards max_takeovers, not towards the attempts.
    taken_over = psql(db, "SELECT COUNT(*) FROM job_days WHERE takeovers >= 1 AND attempts = 1")
    assert int(taken_over) >= 1, "a surviving node took over the killed node's day"

    # Every webhook delivered at least once; every retry of one delivery carries its token.
    from urllib.parse import parse_qsl
    from twilio.request_validator import RequestValidator
    hooks.close()
    validator = RequestValidator(account["auth_token"])
    tokens = {}
    for method, path, headers, body in hooks.received:
        params = dict(parse_qsl(body))
        assert validator.validate(hooks.base + path, params, headers["X-Twilio-Signature"])
        tokens.setdefault(params["JobSid"], set()).add(headers["I-Twilio-Idempotency-Token"])
    assert set(tokens) == set(jobs), "every job's webhook arrived"
    assert all(len(t) == 1 for t in tokens.values()), tokens
    print(f"{len(hooks.received)} webhook requests for {len(jobs)} jobs")

    # Every Day once, byte-correct.
    listed = [d.day for d in c.bulkexports.v1.exports("Messages").days.stream(page_size=3)]
    assert sorted(listed) == sorted(set(listed)), listed
    expected_days = sorted({day(n) for n in range(7, 13)})
    assert sorted(listed) == expected_days
    for d in listed:
        info = [x for x in c.bulkexports.v1.exports("Messages").days.list() if x.day == d][0]
        link = c.bulkexports.v1.exports("Messages").days(d).fetch().redirect_to
        with urllib.request.urlopen(link) as r:
            raw = r.read()
        assert len(raw) == info.size
        lines = gzip.decompress(raw).decode().splitlines()
        want = file_order([day_file_shape("Messages", x) for x in rest if iso(x["date_created"])[:10] == d])
        assert [json.loads(line) for line in lines] == want, d

    # No object in the bucket is a partial or orphaned file: each is a published
    # Day's file, or an old one queued for removal.
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT"])
    keys = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys |= {o["Key"][len(prefix):] for o in page.get("Contents", [])}
    published = set(psql(db, "SELECT blob_key FROM days").splitlines())
    garbage = set(filter(None, psql(db, "SELECT blob_key FROM blob_garbage").splitlines()))
    assert published <= keys
    assert keys <= published | garbage, keys - published - garbage
    uploads = s3.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", [])
    print(f"{len(uploads)} unfinished multipart upload(s) of the killed node, invisible as objects")
