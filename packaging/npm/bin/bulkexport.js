#!/usr/bin/env node
// Runs the bulkexport binary this package carries, with the arguments given.
const { spawnSync } = require("node:child_process");
const { binaryPath } = require("../index.js");

let bin;
try {
  bin = binaryPath();
} catch (e) {
  console.error(e.message);
  process.exit(1);
}
const r = spawnSync(bin, process.argv.slice(2), { stdio: "inherit" });
if (r.error) {
  console.error(`bulkexport: ${r.error.message}`);
  process.exit(1);
}
process.exit(r.status === null ? 1 : r.status);
