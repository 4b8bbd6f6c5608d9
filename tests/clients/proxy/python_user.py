"""A user's script with the stock twilio-python client and no base-URL change.
It reaches bulkexport only through its environment: HTTPS_PROXY and
REQUESTS_CA_BUNDLE. Usage: python_user.py create START END | check JOB_SID DAY"""
import gzip
import json
import os
import sys

import requests
from twilio.rest import Client

client = Client(os.environ["TWILIO_ACCOUNT_SID"], os.environ["TWILIO_AUTH_TOKEN"])
messages = client.bulkexports.v1.exports("Messages")

if sys.argv[1] == "create":
    start, end = sys.argv[2], sys.argv[3]
    first = messages.export_custom_jobs.create(start_day=start, end_day=start, friendly_name="python-1")
    second = messages.export_custom_jobs.create(start_day=start, end_day=end, friendly_name="python-2")
    print(json.dumps({"jobs": [first.job_sid, second.job_sid]}))
else:
    job_sid, day = sys.argv[2], sys.argv[3]
    job = client.bulkexports.v1.exports.jobs(job_sid).fetch()
    jobs = [j.job_sid for j in messages.export_custom_jobs.stream(page_size=1)]
    days = [d.day for d in messages.days.stream(page_size=1)]
    link = messages.days(day).fetch().redirect_to
    lines = gzip.decompress(requests.get(link, timeout=30).content).decode().splitlines()
    doomed = messages.export_custom_jobs.create(start_day=day, end_day=day, friendly_name="python-3").job_sid
    deleted = client.bulkexports.v1.exports.jobs(doomed).delete()
    after = client.bulkexports.v1.exports.jobs(doomed).fetch()
    print(json.dumps({
        "deleted": deleted, "deleted_statuses": [d["status"] for d in after.details],
        "status": job.details[0]["status"], "job_url": job.url, "jobs": jobs, "days": days,
        "link": link, "sids": [json.loads(line)["sid"] for line in lines],
    }))
