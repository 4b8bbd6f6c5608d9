//! `serve --demo`: a demo account with a week of seeded records and a job
//! exporting its Messages, created once; how to open it in the console, and
//! a ready-to-paste example for the official Python client.

use crate::domain::{Day, ResourceType};
use crate::exports::Exports;

const MARKER: &str = "demo_account_sid";
const SEED: u64 = 2024;

fn per_day(rt: ResourceType) -> u32 {
    match rt {
        ResourceType::Messages => 500,
        ResourceType::Calls => 200,
        ResourceType::Conferences => 20,
        ResourceType::Participants => 80,
    }
}

/// The last day the demo seeds (the newest day a job may export) and the first.
fn demo_days(today: Day) -> (Day, Day) {
    let end = today.minus_days(2);
    (end.minus_days(6), end)
}

/// Creates the demo account, its records and a job exporting its Messages
/// on first use; returns its SID and token.
pub async fn ensure_demo(ex: &Exports, base: &str) -> anyhow::Result<(String, String)> {
    if let Some(sid) = ex.db().marker(MARKER).await? {
        if let Some(account) = ex.db().find_account(&sid).await? {
            return Ok((account.sid, account.auth_token));
        }
    }
    let account = ex.create_account("Demo account", None).await?;
    let (start, end) = demo_days(ex.clock().today());
    for rt in ResourceType::ALL {
        ex.seed(&account.sid, rt, start, end, per_day(rt), SEED)
            .await?;
    }
    // A job to find in the console: the week of Messages, exported at once.
    let job = crate::exports::JobRequest {
        start_day: Some(start.to_string()),
        end_day: Some(end.to_string()),
        friendly_name: Some("demo".into()),
        ..Default::default()
    };
    let origin = crate::exports::JobOrigin {
        initiated_by: "the demo".into(),
        base_url: base.to_string(),
    };
    ex.create_job(&account.sid, ResourceType::Messages, &job, &origin)
        .await?;
    ex.db().set_marker(MARKER, &account.sid).await?;
    Ok((account.sid, account.auth_token))
}

pub fn instructions(base: &str, sid: &str, token: &str, today: Day) -> String {
    let (start, end) = demo_days(today);
    format!(
        r#"
Demo account (records for every resource type, {start} to {end}):
  account_sid = {sid}
  auth_token  = {token}

See it in the browser: open {base}/console and sign in with the two values
above. The job "demo" exports the week of Messages: its Days hold the records.

Try it with the official Python client (pip install twilio==9.13.0), pasted into a shell:

python3 - <<'PY'
import gzip, json, time, urllib.request
from twilio.rest import Client

client = Client("{sid}", "{token}")
client.bulkexports.base_url = "{base}"
messages = client.bulkexports.v1.exports("Messages")
job = messages.export_custom_jobs.create(start_day="{start}", end_day="{end}", friendly_name="demo")
print("job", job.job_sid, "queued at position", job.job_queue_position)
while True:
    job = client.bulkexports.v1.exports.jobs(job.job_sid).fetch()
    if all(group["status"].startswith("Completed") or group["status"] == "Failed" for group in job.details):
        break
    time.sleep(0.5)
print("details", job.details)
day = messages.days("{end}").fetch()
lines = gzip.decompress(urllib.request.urlopen(day.redirect_to).read()).splitlines()
records = [json.loads(line) for line in lines]
print(len(records), "messages on {end}; the first:", records[0])
PY
"#
    )
}
