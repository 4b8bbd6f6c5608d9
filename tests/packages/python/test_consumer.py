"""A Python project's suite using the wheel's pytest plugin, as its README
shows: run by the test command in a fresh virtualenv without Rust on PATH."""
import pytest
from twilio.base.exceptions import TwilioRestException


def test_my_exporter(bulkexport):
    client = bulkexport.client()
    job = client.bulkexports.v1.exports("Messages").export_custom_jobs.create(
        start_day="2026-01-01", end_day="2026-01-02", friendly_name="t")
    bulkexport.drain()
    fetched = client.bulkexports.v1.exports.jobs(job.job_sid).fetch()
    assert [g["status"] for g in fetched.details] == ["CompletedEmptyRecords"]
    assert [g["days"] for g in fetched.details] == [["2026-01-01", "2026-01-02"]]


def test_an_injected_error_and_the_journal_that_records_it(bulkexport):
    client = bulkexport.client()
    fault = bulkexport.faults.add("ApiError", Operation="FetchJob", Status=503, Times=1)
    job = client.bulkexports.v1.exports("Calls").export_custom_jobs.create(
        start_day="2026-01-01", end_day="2026-01-01", friendly_name="f", email="me@example.com")
    with pytest.raises(TwilioRestException) as e:
        client.bulkexports.v1.exports.jobs(job.job_sid).fetch()
    assert (e.value.status, e.value.code) == (503, 20503)
    assert client.bulkexports.v1.exports.jobs(job.job_sid).fetch().job_sid == job.job_sid
    assert [r["fault"] for r in bulkexport.requests(Operation="FetchJob")] == [None, fault["sid"]]
    bulkexport.drain()
    assert [e["kind"] for e in bulkexport.emails(JobSid=job.job_sid)] == ["completion"]


def test_each_test_starts_from_the_fixtures(bulkexport):
    client = bulkexport.client()
    assert list(client.bulkexports.v1.exports("Calls").export_custom_jobs.list()) == []
    assert bulkexport.faults.list() == []
    assert bulkexport.advance("1h")


def test_fixtures_give_fixed_credentials_and_records(bulkexport):
    assert bulkexport.account_sid == "AC00000000000000000000000000000001"
    client = bulkexport.client("AC00000000000000000000000000000001", "0123456789abcdef0123456789abcdef")
    job = client.bulkexports.v1.exports("Calls").export_custom_jobs.create(
        start_day="2026-01-03", end_day="2026-01-03", friendly_name="seeded")
    bulkexport.drain()
    fetched = client.bulkexports.v1.exports.jobs(job.job_sid).fetch()
    assert [g["status"] for g in fetched.details] == ["Completed"]
    days = client.bulkexports.v1.exports("Calls").days.list()
    assert [(d.day, d.size > 0) for d in days] == [("2026-01-03", True)]
