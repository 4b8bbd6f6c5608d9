// Start a bulkexport server from Node and steer it: the binary this package
// carries, run on 127.0.0.1 with a temporary data directory, and its admin
// API (drain, clock, faults, journals, reset) as methods.
//
//   const { start } = require("bulkexport");
//   const bx = await start({ fixtures: "ci.toml" });
//   const client = bx.client();            // twilio-node, pointed at the server
//   ...
//   await bx.stop();
const { spawn } = require("node:child_process");
const crypto = require("node:crypto");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

// The platform the carried binary was built for (written by packaging/build.sh).
const BUILT_FOR = require("./bin/platform.json");

function binaryPath() {
  if (process.env.BULKEXPORT_BIN) return process.env.BULKEXPORT_BIN;
  if (process.platform !== BUILT_FOR.platform || process.arch !== BUILT_FOR.arch) {
    throw new Error(
      `bulkexport: this package carries a binary for ${BUILT_FOR.platform}-${BUILT_FOR.arch}, ` +
        `not for ${process.platform}-${process.arch}; build it from source (cargo build --release) ` +
        `and set BULKEXPORT_BIN to it`,
    );
  }
  return path.join(__dirname, "bin", BUILT_FOR.binary);
}

// A fixtures file of one account with random credentials, so that a reset
// gives the same account back.
function oneAccountFixtures(file) {
  const sid = "AC" + crypto.randomBytes(16).toString("hex");
  const token = crypto.randomBytes(16).toString("hex");
  fs.writeFileSync(file, `[[accounts]]\nsid = "${sid}"\nauth_token = "${token}"\nfriendly_name = "node"\neditions = true\n`);
  return file;
}

const TWILIO_API = /^https:\/\/[A-Za-z0-9.-]+\.twilio\.com(?=\/|$)/;

class Server {
  async admin(method, p, params = {}) {
    const form = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined).map(([k, v]) => [k, String(v)]));
    const post = method === "POST";
    const qs = form.toString();
    const r = await fetch(`${this.url}${p}${!post && qs ? "?" + qs : ""}`, {
      method,
      headers: { Authorization: `Bearer ${this.adminToken}`, "Content-Type": "application/x-www-form-urlencoded" },
      body: post ? qs : undefined,
    });
    const text = await r.text();
    if (!r.ok && r.status !== 504) throw new Error(`bulkexport ${method} ${p}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }

  // A twilio-node client whose requests go to this server (the account's
  // credentials unless others are given). Needs the twilio package.
  client(username = this.accountSid, password = this.authToken, opts = {}) {
    const twilio = require("twilio");
    const base = this.url;
    class Local extends twilio.RequestClient {
      request(o) {
        return super.request({ ...o, uri: o.uri.replace(TWILIO_API, base) });
      }
    }
    return twilio(username, password, { ...opts, httpClient: new Local() });
  }

  async drain(timeoutSeconds = 60) {
    const { idle } = await this.admin("POST", "/admin/v1/Queue/Drain", { TimeoutSeconds: timeoutSeconds });
    if (!idle) throw new Error("bulkexport: the queue did not drain");
  }

  // Moves the service clock forward ("90s", "36h", "8d"); the new time.
  async advance(duration) {
    return (await this.admin("POST", "/admin/v1/Clock", { Advance: duration })).now;
  }

  async reset() {
    await this.admin("POST", "/admin/v1/Reset");
  }

  async deliveries(filters = {}) {
    return (await this.admin("GET", "/admin/v1/Deliveries", filters)).deliveries;
  }

  async emails(filters = {}) {
    return (await this.admin("GET", "/admin/v1/Emails", filters)).emails;
  }

  async requests(filters = {}) {
    return (await this.admin("GET", "/admin/v1/Requests", filters)).requests;
  }

  async stop() {
    if (this.process.exitCode === null && this.process.signalCode === null) {
      const exited = new Promise((resolve) => this.process.once("exit", resolve));
      this.process.kill("SIGTERM");
      await exited;
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// Starts `bulkexport serve`. options.fixtures: a fixtures file (else one
// account with random credentials); options.args: more `serve` arguments;
// options.clock: where the service clock starts (default now).
async function start(options = {}) {
  const s = new Server();
  s.dir = fs.mkdtempSync(path.join(os.tmpdir(), "bulkexport-"));
  s.adminToken = crypto.randomBytes(16).toString("hex");
  const fixtures = options.fixtures ? path.resolve(options.fixtures) : oneAccountFixtures(path.join(s.dir, "fixtures.toml"));
  const ready = path.join(s.dir, "ready.json");
  const clock = options.clock || new Date().toISOString().replace(/\.\d+Z$/, "Z");
  const args = ["--data-dir", path.join(s.dir, "data"), "--listen", "127.0.0.1:0", "serve", "--ready-file", ready, "--fixtures", fixtures, "--clock", clock, ...(options.args || [])];
  const log = fs.openSync(path.join(s.dir, "server.log"), "w");
  s.process = spawn(binaryPath(), args, {
    env: { RUST_LOG: "warn", ...process.env, BULKEXPORT_ADMIN_TOKEN: s.adminToken },
    stdio: ["ignore", log, log],
  });
  // Waiting for the process to listen is start-up, not waiting for work.
  const deadline = Date.now() + (options.startTimeoutMs || 30000);
  while (!fs.existsSync(ready)) {
    if (s.process.exitCode !== null) {
      throw new Error(`bulkexport exited at start: ${fs.readFileSync(path.join(s.dir, "server.log"), "utf8")}`);
    }
    if (Date.now() > deadline) {
      await s.stop();
      throw new Error("bulkexport did not start in time");
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const info = JSON.parse(fs.readFileSync(ready, "utf8"));
  s.url = info.url;
  s.proxyUrl = info.proxy_url;
  s.accountSid = info.account_sid;
  s.authToken = info.auth_token;
  s.faults = {
    add: (kind, params = {}) => s.admin("POST", "/admin/v1/Faults", { Kind: kind, ...params }),
    list: async () => (await s.admin("GET", "/admin/v1/Faults")).faults,
    clear: () => s.admin("DELETE", "/admin/v1/Faults"),
  };
  return s;
}

module.exports = { start, binaryPath };
