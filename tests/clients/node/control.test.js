// A consumer's test suite with twilio-node: fixed credentials from a fixtures
// file, fault rules, journals, and a reset between tests.
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const { localClient } = require(path.resolve(__dirname, "..", "..", "..", "clients", "bulkexport-local.js"));
const { Server } = require("./server");

// Hard-coded, as a CI configuration would have them.
const SID = "AC00000000000000000000000000000002";
const TOKEN = "fedcba9876543210fedcba9876543210";

let server;
let bulk;

let dir;

test.before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "bulkexport-fixtures-"));
  const file = path.join(dir, "ci.toml");
  fs.writeFileSync(
    file,
    `[[accounts]]
sid = "${SID}"
auth_token = "${TOKEN}"
  [[accounts.seed]]
  resource_type = "Calls"
  start_day = "2026-01-01"
  end_day = "2026-01-02"
  per_day = 30
`,
  );
  server = await Server.start(["--fixtures", file, "--clock", "2026-01-10T00:00:00Z"]);
  bulk = localClient(server.base, SID, TOKEN).bulkexports.v1;
});

test.after(async () => {
  await server.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});
test.afterEach(() => server.admin("POST", "/admin/v1/Reset"));

test("a day error once is retried to completion as the clock moves", async () => {
  await server.admin("POST", "/admin/v1/Faults", { Kind: "DayError", ResourceType: "Calls", Times: "1" });
  const job = await bulk.exports("Calls").exportCustomJobs.create({
    startDay: "2026-01-01",
    endDay: "2026-01-01",
    friendlyName: "retry",
  });
  await server.drain();
  let fetched = await bulk.exports.jobs(job.jobSid).fetch();
  assert.deepEqual(fetched.details.map((g) => g.status), ["ErrorDuringRun"]);
  await server.admin("POST", "/admin/v1/Clock", { Advance: "5m" });
  await server.drain();
  fetched = await bulk.exports.jobs(job.jobSid).fetch();
  assert.deepEqual(fetched.details.map((g) => g.status), ["Completed"]);
  const { faults } = await server.admin("GET", "/admin/v1/Faults");
  assert.equal(faults[0].fired, 1);
});

test("an injected API error reaches the client as a RestException", async () => {
  const fault = await server.admin("POST", "/admin/v1/Faults", {
    Kind: "ApiError",
    Operation: "ListExportCustomJob",
    Status: "429",
    Times: "1",
  });
  await assert.rejects(bulk.exports("Calls").exportCustomJobs.list(), (e) => {
    assert.equal(e.status, 429);
    assert.equal(e.code, 20429);
    return true;
  });
  assert.deepEqual(await bulk.exports("Calls").exportCustomJobs.list(), []);
  const { requests } = await server.admin("GET", "/admin/v1/Requests", { Operation: "ListExportCustomJob" });
  assert.deepEqual(requests.map((r) => [r.status, r.fault]), [[200, null], [429, fault.sid]]);
});

test("a reset leaves only the fixtures", async () => {
  const { faults } = await server.admin("GET", "/admin/v1/Faults");
  assert.deepEqual(faults, []);
  const { requests } = await server.admin("GET", "/admin/v1/Requests");
  assert.deepEqual(requests, []);
  const days = await bulk.exports("Calls").days.list();
  assert.deepEqual(days, []);
});
