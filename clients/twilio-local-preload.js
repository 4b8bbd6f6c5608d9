// Point the stock twilio-cli at a bulkexport server without changing it:
//   TWILIO_LOCAL_BASE_URL=http://127.0.0.1:8080 \
//   NODE_OPTIONS="--require /path/to/clients/twilio-local-preload.js" \
//   TWILIO_SKIP_NEW_VERSION_CHECK=true twilio api:bulkexports:v1:exports:jobs:list --resource-type Messages
// twilio-cli sends its API requests through axios; when axios is loaded, this
// adds a request interceptor that rewrites https://<product>.twilio.com to the
// local base URL. Tested with twilio-cli 6.2.4 by tests/clients/test_proxy.py.
const Module = require("module");

const BASE = (process.env.TWILIO_LOCAL_BASE_URL || "http://127.0.0.1:8080").replace(/\/+$/, "");
const TWILIO_API = /^https:\/\/[A-Za-z0-9.-]+\.twilio\.com(?=\/|$)/;
const seen = new WeakSet();
const originalLoad = Module._load;

Module._load = function load(request, ...rest) {
  const loaded = originalLoad.call(this, request, ...rest);
  if (request === "axios" && loaded && loaded.interceptors && !seen.has(loaded)) {
    seen.add(loaded);
    loaded.interceptors.request.use((config) => {
      if (config.url) config.url = config.url.replace(TWILIO_API, BASE);
      return config;
    });
  }
  return loaded;
};
