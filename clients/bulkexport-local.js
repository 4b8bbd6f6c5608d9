// Point twilio-node at a bulkexport server: every request the client would send
// to https://<product>.twilio.com goes to the server's base URL instead,
// including the absolute next_page_url links of lists.
//
//   const { localClient } = require("./bulkexport-local");
//   const client = localClient("http://127.0.0.1:8080", accountSid, authToken);
//
// Tested with twilio-node 6.2.0 by tests/clients/node/. Leave TWILIO_REGION and
// TWILIO_EDGE unset.
const twilio = require("twilio");
const RequestClient = require("twilio/lib/base/RequestClient");

const TWILIO_API = /^https:\/\/[A-Za-z0-9.-]+\.twilio\.com(?=\/|$)/;

class LocalRequestClient extends RequestClient {
  constructor(baseUrl, opts) {
    super(opts);
    this.baseUrl = baseUrl.replace(/\/+$/, "");
  }

  request(opts) {
    return super.request({ ...opts, uri: opts.uri.replace(TWILIO_API, this.baseUrl) });
  }
}

// username/password: an Account SID (AC…) and its auth token, or an API key SID
// and secret with { accountSid } in opts.
function localClient(baseUrl, username, password, opts = {}) {
  return twilio(username, password, { ...opts, httpClient: new LocalRequestClient(baseUrl) });
}

module.exports = { localClient };
