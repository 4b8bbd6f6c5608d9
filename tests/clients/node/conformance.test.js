// Conformance of the service with the official twilio-node client.
const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const zlib = require("node:zlib");

const { localClient } = require(path.resolve(__dirname, "..", "..", "..", "clients", "bulkexport-local.js"));
const { Server, day } = require("./server");

let server;
let account;
let client;

test.before(async () => {
  server = await Server.start();
  account = server.account("node-suite", null, true);
  client = localClient(server.base, account.sid, account.auth_token);
  server.cli("seed", "--account", account.sid, "--resource-type", "Calls", "--start-day", day(7), "--end-day", day(5), "--per-day", "60", "--seed", "3");
});

test.after(() => server.stop());

const bulk = () => client.bulkexports.v1;

test("a custom job runs and its day files download", async () => {
  const calls = bulk().exports("Calls");
  const exp = await calls.fetch();
  assert.equal(exp.resourceType, "Calls");
  const job = await calls.exportCustomJobs.create({ startDay: day(7), endDay: day(3), friendlyName: "node" });
  assert.match(job.jobSid, /^JS[0-9a-f]{32}$/);
  await server.drain();
  const done = await bulk().exports.jobs(job.jobSid).fetch();
  const byStatus = Object.fromEntries(done.details.map((g) => [g.status, g]));
  assert.deepEqual(byStatus.Completed.days, [day(7), day(6), day(5)]);
  assert.equal(byStatus.Completed.count, 3);
  assert.deepEqual(byStatus.CompletedEmptyRecords.days, [day(4), day(3)]);
  assert.equal(done.jobQueuePosition, null);

  const d = await calls.days(day(6)).fetch();
  const res = await fetch(d.redirect_to);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "application/gzip");
  assert.equal(res.headers.get("content-encoding"), null);
  const lines = zlib.gunzipSync(Buffer.from(await res.arrayBuffer())).toString("utf8").trim().split("\n");
  assert.equal(lines.length, 60);
  const records = lines.map((l) => JSON.parse(l));
  for (const r of records) {
    assert.equal(r.account_sid, account.sid);
    assert.match(r.sid, /^CA[0-9a-f]{32}$/);
    assert.equal(r.date_created.slice(0, 10), day(6));
    assert.equal(typeof r.duration, "number");
    assert.equal(r.uri, undefined);
  }
  const keys = records.map((r) => `${r.date_created}|${r.sid}`);
  assert.deepEqual(keys, [...keys].sort(), "records are in file order");
});

test("lists page through more than one page", async () => {
  const conf = bulk().exports("Conferences");
  const sids = [];
  for (let i = 0; i < 5; i++) {
    sids.push((await conf.exportCustomJobs.create({ startDay: day(12), endDay: day(12 - i), friendlyName: `p${i}` })).jobSid);
  }
  const page = await conf.exportCustomJobs.page({ pageSize: 2 });
  assert.equal(page.instances.length, 2);
  const next = await page.nextPage();
  assert.equal(next.instances.length, 2);
  const all = await conf.exportCustomJobs.list({ pageSize: 2 });
  assert.deepEqual(all.map((j) => j.jobSid), sids);
  await server.drain();
  const days = await conf.days.list({ pageSize: 2 });
  assert.deepEqual(days.map((d) => d.day).sort(), [12, 11, 10, 9, 8].map(day));
  const seen = [];
  await conf.days.each({ pageSize: 3 }, (d) => seen.push(d.day));
  assert.equal(seen.length, 5);
});

test("delete a job", async () => {
  const jobs = bulk().exports("Participants").exportCustomJobs;
  const job = await jobs.create({ startDay: day(9), endDay: day(3), friendlyName: "delete me" });
  assert.equal(await bulk().exports.jobs(job.jobSid).remove(), true);
  await server.drain();
  const after = await bulk().exports.jobs(job.jobSid).fetch();
  for (const g of after.details) {
    assert.ok(["DeletedByUserRequest", "Completed", "CompletedEmptyRecords"].includes(g.status), g.status);
  }
});

test("export configuration", async () => {
  const conf = bulk().exportConfiguration("Messages");
  assert.equal((await conf.fetch()).enabled, false);
  const updated = await conf.update({ enabled: true, webhookUrl: "https://example.com/h", webhookMethod: "GET" });
  assert.equal(updated.enabled, true);
  assert.equal(updated.webhookMethod, "GET");
});

test("webhook signatures pass validateRequest", async () => {
  const http = require("node:http");
  const twilio = require("twilio");
  const received = [];
  const listener = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      received.push({ method: req.method, url: req.url, headers: req.headers, body });
      res.writeHead(200);
      res.end("ok");
    });
  });
  await new Promise((r) => listener.listen(0, "127.0.0.1", r));
  const base = `http://127.0.0.1:${listener.address().port}`;
  const fresh = server.account("node-webhooks");
  const c = localClient(server.base, fresh.sid, fresh.auth_token).bulkexports.v1;
  const job = await c.exports("Messages").exportCustomJobs.create({
    startDay: day(20), endDay: day(20), friendlyName: "node hook", webhookUrl: `${base}/done`, webhookMethod: "POST",
  });
  await server.drain();
  listener.close();
  assert.equal(received.length, 1);
  const r = received[0];
  const params = Object.fromEntries(new URLSearchParams(r.body));
  assert.equal(params.JobSid, job.jobSid);
  assert.equal(params.Status, "Completed");
  assert.ok(twilio.validateRequest(fresh.auth_token, r.headers["x-twilio-signature"], `${base}/done`, params));
  assert.ok(!twilio.validateRequest(fresh.auth_token, r.headers["x-twilio-signature"], `${base}/done`, { ...params, Status: "Failed" }));
  assert.ok(r.headers["i-twilio-idempotency-token"]);
});

test("archived calls and the call resource", async () => {
  const fs = require("node:fs");
  const os = require("node:os");
  const fresh = server.account("node-calls");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "calls-"));
  const file = path.join(dir, "calls.ndjson");
  const sids = [1, 2, 3].map((i) => "CA" + i.toString(16).padStart(32, "0"));
  fs.writeFileSync(file, sids.map((sid, i) => JSON.stringify({ sid, date_created: `${day(6)}T0${i}:00:00Z`, status: "completed" })).join("\n") + "\n");
  server.cli("ingest", "--account", fresh.sid, "--resource-type", "Calls", file);
  fs.rmSync(dir, { recursive: true, force: true });
  const c = localClient(server.base, fresh.sid, fresh.auth_token);
  assert.equal((await c.calls(sids[0]).fetch()).sid, sids[0]);
  assert.deepEqual((await c.calls.list({ pageSize: 2 })).map((x) => x.sid), [...sids].reverse());
  assert.equal(await c.voice.v1.archivedCalls(new Date(`${day(6)}T00:00:00Z`), sids[0]).remove(), true);
  assert.equal(await c.voice.v1.archivedCalls(new Date(`${day(6)}T00:00:00Z`), sids[0]).remove(), true);
  await expectError(404, 20404, () => c.voice.v1.archivedCalls(new Date(`${day(5)}T00:00:00Z`), sids[1]).remove());
  assert.equal(await c.calls(sids[2]).remove(), true);
  await expectError(404, 20404, () => c.calls(sids[2]).fetch());
});

async function expectError(status, code, fn, word) {
  await assert.rejects(fn, (e) => {
    assert.equal(e.status, status, e.message);
    assert.equal(e.code, code, e.message);
    assert.equal(e.moreInfo, `https://www.twilio.com/docs/errors/${code}`);
    if (word) assert.ok(e.message.includes(word), e.message);
    return true;
  });
}

test("every validation error is a RestException with status and code", async () => {
  const fresh = server.account("node-validation");
  const c = localClient(server.base, fresh.sid, fresh.auth_token).bulkexports.v1;
  const jobs = c.exports("Messages").exportCustomJobs;
  const ok = { startDay: day(10), endDay: day(9), friendlyName: "x" };
  const create = (over) => () => jobs.create({ ...ok, ...over });
  await expectError(400, 20001, create({ startDay: "" }), "StartDay");
  await expectError(400, 20001, create({ endDay: "" }), "EndDay");
  await expectError(400, 20001, create({ friendlyName: "" }), "FriendlyName");
  await expectError(400, 20001, create({ startDay: "2024-1-1" }), "StartDay");
  await expectError(400, 20001, create({ endDay: "2023-04-31" }), "EndDay");
  await expectError(400, 20001, create({ startDay: day(5), endDay: day(6) }), "StartDay");
  await expectError(400, 20001, create({ endDay: day(0) }), "EndDay");
  await expectError(400, 20001, create({ webhookUrl: "https://example.com/h" }), "WebhookMethod");
  await expectError(400, 20001, create({ webhookMethod: "GET" }), "WebhookUrl");
  await expectError(400, 20001, create({ webhookUrl: "https://example.com/h", webhookMethod: "PATCH" }), "WebhookMethod");
  await expectError(400, 20001, create({ webhookUrl: "mailto:x@example.com", webhookMethod: "GET" }), "WebhookUrl");
  await expectError(400, 20001, create({ email: "@example.com" }), "Email");
  await expectError(400, 20001, () => c.exportConfiguration("Messages").update({ enabled: "yes" }), "Enabled");
  await expectError(400, 20001, () => c.exportConfiguration("Messages").update({ enabled: true }), "Editions");
  await expectError(413, 20001, create({ friendlyName: "x".repeat(100000) }), "larger than the limit");
  await expectError(400, 20007, () => jobs.page({ pageSize: 1001 }), "PageSize");
  await expectError(400, 20007, () => c.exports("Messages").days.page({ pageSize: 401 }), "PageSize");
  await expectError(400, 20001, () => jobs.getPage(`${server.base}/v1/Exports/Messages/Jobs?PageToken=PB12-ffffffffffffffff`), "PageToken");
  assert.deepEqual(await jobs.list(), [], "nothing was stored");

  await expectError(404, 20404, () => c.exports("Faxes").exportCustomJobs.list());
  await expectError(404, 20404, () => c.exports.jobs("JSnope").fetch());
  await expectError(404, 20404, () => c.exports.jobs("JS" + "f".repeat(32)).remove());
  await expectError(404, 20404, () => c.exports("Messages").days("2024-02-30").fetch());
  await expectError(404, 20404, () => c.exports("Messages").days("2001-01-01").fetch());
  const mine = await bulk().exports("Messages").exportCustomJobs.create(ok);
  await expectError(404, 20404, () => c.exports.jobs(mine.jobSid).fetch());
  const bad = localClient(server.base, fresh.sid, "not-the-token").bulkexports.v1;
  await expectError(401, 20003, () => bad.exports("Messages").fetch());
});
