// Starts a real `bulkexport serve` for this suite and drives its CLI and admin API.
const { spawn, execFileSync } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");

const ROOT = path.resolve(__dirname, "..", "..", "..");
const BIN = process.env.BULKEXPORT_BIN || path.join(ROOT, "target", "debug", "bulkexport");
const ADMIN = "node-suite-admin-token";

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

// On PostgreSQL and S3, a fresh database and storage prefix for one server: each
// server sees only its own records, queue and clock, as it does on SQLite with
// its own data directory.
function ownDatabase(env) {
  const url = env.BULKEXPORT_DATABASE_URL || "";
  if (!/^postgres(ql)?:\/\//.test(url)) return env;
  const name = "suite_" + require("node:crypto").randomBytes(8).toString("hex");
  execFileSync("psql", [url, "-qc", `CREATE DATABASE ${name}`]);
  const own = { ...env, BULKEXPORT_DATABASE_URL: url.slice(0, url.lastIndexOf("/") + 1) + name };
  if (env.BULKEXPORT_STORAGE_URL) own.BULKEXPORT_STORAGE_URL = env.BULKEXPORT_STORAGE_URL.replace(/\/*$/, "/") + name;
  return own;
}

class Server {
  static async start(args = []) {
    const s = new Server();
    s.dir = fs.mkdtempSync(path.join(os.tmpdir(), "bulkexport-node-"));
    s.port = await freePort();
    s.base = `http://127.0.0.1:${s.port}`;
    s.env = ownDatabase({ ...process.env, BULKEXPORT_ADMIN_TOKEN: ADMIN, RUST_LOG: "warn" });
    const log = fs.openSync(path.join(s.dir, "server.log"), "w");
    s.proc = spawn(BIN, ["serve", "--data-dir", s.dir, "--listen", `127.0.0.1:${s.port}`, ...args], {
      env: s.env,
      stdio: ["ignore", log, log],
    });
    await s.waitReady();
    return s;
  }

  async waitReady() {
    // Waiting for the process to bind is start-up, not waiting for work.
    const deadline = Date.now() + 30000;
    while (Date.now() < deadline) {
      try {
        const r = await fetch(`${this.base}/readyz`);
        if (r.status === 200) return;
      } catch (_) {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    throw new Error("server did not become ready");
  }

  cli(...args) {
    const out = execFileSync(BIN, ["--data-dir", this.dir, ...args], { env: this.env, encoding: "utf8" });
    return out.trim() ? JSON.parse(out) : null;
  }

  account(name, parent, editions = false) {
    const args = ["accounts", "create", "--friendly-name", name];
    if (parent) args.push("--parent", parent);
    if (editions) args.push("--editions");
    return this.cli(...args);
  }

  async drain() {
    const r = await fetch(`${this.base}/admin/v1/Queue/Drain`, {
      method: "POST",
      headers: { Authorization: `Bearer ${ADMIN}` },
    });
    const body = await r.json();
    if (!body.idle) throw new Error("queue did not drain");
  }

  // A call of the admin API (form body for POST, query otherwise); its JSON.
  async admin(method, p, form = {}) {
    const qs = new URLSearchParams(form).toString();
    const post = method === "POST";
    const r = await fetch(`${this.base}${p}${!post && qs ? "?" + qs : ""}`, {
      method,
      headers: { Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/x-www-form-urlencoded" },
      body: post ? qs : undefined,
    });
    if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${await r.text()}`);
    return r.status === 204 ? null : r.json();
  }

  // Stops the process, then removes its data directory: its database holds the suite's records.
  async stop() {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      const exited = new Promise((r) => this.proc.once("exit", r));
      this.proc.kill("SIGTERM");
      await exited;
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

function day(offset) {
  const d = new Date(Date.now() - offset * 86400000);
  return d.toISOString().slice(0, 10);
}

module.exports = { Server, day };
