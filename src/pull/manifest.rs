//! `manifest.json` of one account's resource type: what `pull` obtained of
//! each day, so that a second run knows what is already there and whole.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What was obtained of one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Completed, CompletedEmptyRecords or Failed.
    pub status: String,
    pub size: u64,
    pub sha256: String,
    pub records: u64,
    pub job_sid: Option<String>,
    pub downloaded_at: String,
}

/// The manifest of one folder `DIR/<AccountSid>/<ResourceType>/`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub days: BTreeMap<String, Entry>,
}

impl Manifest {
    pub fn path(folder: &Path) -> PathBuf {
        folder.join("manifest.json")
    }

    /// The manifest in `folder`, or an empty one.
    pub fn load(folder: &Path) -> anyhow::Result<Manifest> {
        match std::fs::read(Manifest::path(folder)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", Manifest::path(folder).display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::default()),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes the manifest whole (a rename) into `folder`.
    pub fn save(&self, folder: &Path) -> anyhow::Result<()> {
        let path = Manifest::path(folder);
        let tmp = folder.join(".manifest.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }

    /// True when `day` was obtained whole and its file still is what the
    /// entry says (size and SHA-256).
    pub fn holds(&self, folder: &Path, day: &str) -> bool {
        let Some(entry) = self.days.get(day) else {
            return false;
        };
        if entry.status == "Failed" {
            return false;
        }
        match std::fs::read(day_file(folder, day)) {
            Ok(bytes) => bytes.len() as u64 == entry.size && sha256_hex(&bytes) == entry.sha256,
            Err(_) => false,
        }
    }
}

/// Where a day's file goes: `<folder>/<yyyy-mm-dd>.json.gz`.
pub fn day_file(folder: &Path, day: &str) -> PathBuf {
    folder.join(format!("{day}.json.gz"))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
