"""Point twilio-python at a bulkexport server: every request the client would
send to https://<product>.twilio.com goes to the server's base URL instead,
including the absolute next_page_url links of lists.

    from bulkexport_local import local_client
    client = local_client("http://127.0.0.1:8080", account_sid, auth_token)

Tested with twilio-python 9.13.0 by tests/clients/. Leave TWILIO_REGION and
TWILIO_EDGE unset.
"""
import re

from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

TWILIO_API = re.compile(r"^https://[A-Za-z0-9.-]+\.twilio\.com(?=/|$)")


class LocalHttpClient(TwilioHttpClient):
    """A TwilioHttpClient that sends Twilio API requests to `base_url`."""

    def __init__(self, base_url, **kwargs):
        super().__init__(**kwargs)
        self.base_url = base_url.rstrip("/")

    def request(self, method, url, *args, **kwargs):
        return super().request(method, TWILIO_API.sub(self.base_url, url, count=1), *args, **kwargs)


def local_client(base_url, username, password, account_sid=None):
    """A twilio.rest.Client for `base_url`. username/password: an Account SID
    and its auth token, or an API key SID and secret (then pass account_sid)."""
    return Client(username, password, account_sid=account_sid, http_client=LocalHttpClient(base_url))
