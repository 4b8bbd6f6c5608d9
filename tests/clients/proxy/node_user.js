// A user's script with the stock twilio-node client and no base-URL change. It
// reaches bulkexport only through its environment: HTTP_PROXY and
// NODE_EXTRA_CA_CERTS. Node's own https does not read proxy variables, so the
// download uses the proxy agent twilio-node itself uses, as a user would.
// Usage: node_user.js create START END | check JOB_SID DAY
const https = require("node:https");
const zlib = require("node:zlib");
const twilio = require("twilio");
const { HttpsProxyAgent } = require("https-proxy-agent");

const client = twilio(process.env.TWILIO_ACCOUNT_SID, process.env.TWILIO_AUTH_TOKEN);
const messages = client.bulkexports.v1.exports("Messages");

function download(url) {
  const agent = new HttpsProxyAgent(process.env.HTTP_PROXY);
  return new Promise((resolve, reject) => {
    https.get(url, { agent }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve(Buffer.concat(chunks)));
      res.on("error", reject);
    }).on("error", reject);
  });
}

async function main() {
  const [step, a, b] = process.argv.slice(2);
  if (step === "create") {
    const first = await messages.exportCustomJobs.create({ startDay: a, endDay: a, friendlyName: "node-1" });
    const second = await messages.exportCustomJobs.create({ startDay: a, endDay: b, friendlyName: "node-2" });
    console.log(JSON.stringify({ jobs: [first.jobSid, second.jobSid] }));
    return;
  }
  const job = await client.bulkexports.v1.exports.jobs(a).fetch();
  const jobs = (await messages.exportCustomJobs.list({ pageSize: 1 })).map((j) => j.jobSid);
  const days = (await messages.days.list({ pageSize: 1 })).map((d) => d.day);
  const link = (await messages.days(b).fetch()).redirect_to;
  const lines = zlib.gunzipSync(await download(link)).toString().trim().split("\n");
  const doomed = (await messages.exportCustomJobs.create({ startDay: b, endDay: b, friendlyName: "node-3" })).jobSid;
  const deleted = await client.bulkexports.v1.exports.jobs(doomed).remove();
  const after = await client.bulkexports.v1.exports.jobs(doomed).fetch();
  console.log(JSON.stringify({
    deleted, deleted_statuses: after.details.map((d) => d.status),
    status: job.details[0].status, job_url: job.url, jobs, days, link,
    sids: lines.map((l) => JSON.parse(l).sid),
  }));
}

main().catch((e) => { console.error(e); process.exit(1); });
