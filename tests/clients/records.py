"""REST-shaped records made here, and the day-file shape record-format.md says they become.

This is an independent statement of the format rules, so the suites check the service
against the document rather than against its own code."""
import datetime as dt
import email.utils
import json
import random

DROP = {
    "Messages": {"price_unit", "api_version", "error_message", "uri", "subresource_uris"},
    "Calls": {"uri", "subresource_uris"},
}
TIMESTAMPS = {"date_created", "date_updated", "date_sent", "start_time", "end_time"}
COUNTERS = {"num_segments", "num_media", "duration", "queue_time"}


def rfc2822(t):
    return email.utils.format_datetime(t, usegmt=False).replace("-0000", "+0000")


def rest_messages(account_sid, day, n, seed=1):
    rng = random.Random(seed)
    base = dt.datetime.fromisoformat(day + "T00:00:00+00:00")
    out = []
    for i in range(n):
        t = base + dt.timedelta(seconds=rng.randrange(86400))
        sid = "SM%032x" % rng.getrandbits(128)
        failed = rng.random() < 0.2
        out.append({
            "account_sid": account_sid, "api_version": "2010-04-01", "body": "hello %d ☃" % i,
            "date_created": rfc2822(t), "date_sent": rfc2822(t + dt.timedelta(seconds=1)),
            "date_updated": rfc2822(t + dt.timedelta(seconds=2)), "direction": "outbound-api",
            "error_code": 30003 if failed else None, "error_message": "Unreachable" if failed else None,
            "from": "+15005550006", "messaging_service_sid": None, "num_media": "0", "num_segments": "1",
            "price": "-0.00750", "price_unit": "USD", "sid": sid, "status": "undelivered" if failed else "delivered",
            "subresource_uris": {"media": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}/Media.json"},
            "to": "+15005550001", "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json",
        })
    return out


def iso(value):
    t = email.utils.parsedate_to_datetime(value).astimezone(dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def day_file_shape(resource_type, rest):
    """The record as record-format.md says it appears in a day file."""
    out = {}
    for k, v in rest.items():
        if k in DROP.get(resource_type, set()):
            continue
        if k in TIMESTAMPS and v is not None:
            v = iso(v)
        elif k in COUNTERS and v is not None:
            v = int(v)
        out[k] = v
    if resource_type == "Messages":
        out["error_code"] = int(out.get("error_code") or 0)
    return out


def file_order(records):
    return sorted(records, key=lambda r: (r["date_created"], r.get("sid") or r.get("call_sid")))


def write_ndjson(path, records):
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
