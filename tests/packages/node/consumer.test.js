// A Node project's suite using the npm package's start(), as its README
// shows: run by the test command in a fresh folder with the package installed.
const test = require("node:test");
const assert = require("node:assert/strict");
const { execFileSync } = require("node:child_process");
const path = require("node:path");
const { start } = require("bulkexport");

let bx;
test.before(async () => {
  bx = await start({ fixtures: path.join(__dirname, "ci.toml") });
});
test.after(() => bx.stop());
test.afterEach(() => bx.reset());

test("npx bulkexport runs the carried binary", () => {
  const out = execFileSync("npx", ["--no-install", "bulkexport", "--version"], { encoding: "utf8" });
  assert.match(out, /^bulkexport \d+\.\d+\.\d+/);
});

test("a job through twilio-node, drained", async () => {
  assert.equal(bx.accountSid, "AC00000000000000000000000000000002");
  const client = bx.client();
  const job = await client.bulkexports.v1.exports("Messages").exportCustomJobs.create({
    startDay: "2026-01-04",
    endDay: "2026-01-05",
    friendlyName: "node",
  });
  await bx.drain();
  const fetched = await client.bulkexports.v1.exports.jobs(job.jobSid).fetch();
  const byStatus = Object.fromEntries(fetched.details.map((g) => [g.status, g.days]));
  assert.deepEqual(byStatus, { Completed: ["2026-01-04"], CompletedEmptyRecords: ["2026-01-05"] });
});

test("a fault and the journal that records it", async () => {
  const client = bx.client();
  const fault = await bx.faults.add("ApiError", { Operation: "ListDay", Status: 429, Times: 1 });
  await assert.rejects(client.bulkexports.v1.exports("Messages").days.list(), { status: 429, code: 20429 });
  const days = await client.bulkexports.v1.exports("Messages").days.list();
  assert.deepEqual(days, []);
  const requests = await bx.requests({ Operation: "ListDay" });
  assert.deepEqual(requests.map((r) => r.fault), [null, fault.sid]);
  assert.deepEqual(await bx.deliveries(), []);
});
