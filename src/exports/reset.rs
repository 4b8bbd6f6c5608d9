//! `Reset`: the explicit wipe between tests, then the fixtures again.

use super::{Exports, Result};

impl Exports {
    /// Removes every account, record, job, Day and day file, notification
    /// and quota use (see `Db::reset_all`), forgets what this process
    /// remembers of them, and applies the fixtures again. Meant for test
    /// suites: an ingest or an export running meanwhile may leave pieces.
    pub async fn reset(&self) -> Result<()> {
        self.db().reset_all().await?;
        self.db().remove_line_segments().await?;
        let files = self.blobs().delete_everything().await?;
        self.forget_credentials();
        self.inner.faults.forget();
        self.clear_request_journal();
        tracing::info!(files, "reset: every account and what belongs to it removed");
        self.apply_configured_fixtures().await
    }
}
