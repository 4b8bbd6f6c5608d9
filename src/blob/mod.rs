//! Day-file storage behind the `object_store` crate: a local directory
//! (`file://DIR`) or an S3-compatible bucket (`s3://bucket[/prefix]`, with
//! credentials, endpoint and region from the standard `AWS_*` variables).
//! Writes are staged and become visible whole.

mod uploads;

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{
    Attribute, Attributes, GetOptions, GetRange, GetResult, ObjectMeta, ObjectStore,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unsupported storage URL {0:?}: use file://DIR or s3://bucket[/prefix]")]
    Unsupported(String),
    #[error("could not create the storage directory {path}: {source}")]
    Directory {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] object_store::Error),
    #[error("could not sync the day file {key} to disk: {source}")]
    Sync { key: String, source: std::io::Error },
    #[error("could not remove what an interrupted upload left: {0}")]
    Leftovers(String),
}

/// Runs file-system work on tokio's blocking pool; a task that could not
/// finish is reported as an I/O error.
async fn on_disk<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(std::io::Error::other)?
}

/// The staging files of `LocalFileSystem` writes of `file` that never
/// completed (the process died mid-upload): `<file>#<digits>`.
fn staged_files(file: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let (Some(dir), Some(name)) = (file.parent(), file.file_name().and_then(|n| n.to_str())) else {
        return Ok(Vec::new());
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut staged = Vec::new();
    for entry in entries {
        let entry = entry?;
        let is_staged = entry.file_name().to_str().is_some_and(|n| {
            n.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('#'))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        });
        if is_staged {
            staged.push(entry.path());
        }
    }
    Ok(staged)
}

/// Removes the staging files of `file` (see [`staged_files`]).
fn remove_staged_files(file: &std::path::Path) -> std::io::Result<()> {
    for path in staged_files(file)? {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[derive(Clone, Debug)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    /// Present for stores that can pre-sign URLs (S3).
    signer: Option<Arc<AmazonS3>>,
    /// The bucket's region (S3), for requests object_store does not make.
    region: String,
    /// The directory of a local store.
    local_root: Option<std::path::PathBuf>,
    prefix: String,
}

impl BlobStore {
    pub fn open(url: &str) -> Result<BlobStore, Error> {
        if let Some(dir) = url.strip_prefix("file://") {
            std::fs::create_dir_all(dir).map_err(|source| Error::Directory {
                path: dir.to_string(),
                source,
            })?;
            let fs = LocalFileSystem::new_with_prefix(dir)?;
            return Ok(BlobStore {
                store: Arc::new(fs),
                signer: None,
                region: String::new(),
                local_root: Some(std::path::PathBuf::from(dir)),
                prefix: String::new(),
            });
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(Error::Unsupported(url.to_string()));
            }
            let builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            let region = builder
                .get_config_value(&AmazonS3ConfigKey::Region)
                .unwrap_or_else(|| "us-east-1".into());
            let s3 = Arc::new(builder.build()?);
            return Ok(BlobStore {
                store: s3.clone(),
                signer: Some(s3),
                region,
                local_root: None,
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        Err(Error::Unsupported(url.to_string()))
    }

    /// `file` or `s3`.
    pub fn kind(&self) -> &'static str {
        if self.signer.is_some() {
            "s3"
        } else {
            "file"
        }
    }

    /// Removes every object of the store (under its prefix): a reset.
    pub async fn delete_everything(&self) -> Result<usize, Error> {
        use futures::TryStreamExt;
        let prefix = (!self.prefix.is_empty()).then(|| Path::from(self.prefix.as_str()));
        let all: Vec<ObjectMeta> = self.store.list(prefix.as_ref()).try_collect().await?;
        for meta in &all {
            match self.store.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(all.len())
    }

    /// Stores and removes a small object: whether day files can be written now.
    pub async fn probe_write(&self) -> Result<(), Error> {
        let key = self.path(&format!(
            ".probe/{}",
            hex::encode(rand::random::<[u8; 8]>())
        ));
        self.store
            .put(&key, object_store::PutPayload::from_static(b"ok"))
            .await?;
        self.store.delete(&key).await?;
        Ok(())
    }

    fn path(&self, key: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(key)
        } else {
            Path::from(format!("{}/{key}", self.prefix))
        }
    }

    /// A streaming writer; nothing is visible at `key` until it is shut down.
    /// Objects in a bucket carry their content type, so that pre-signed
    /// downloads are served as `application/gzip` (and never with a
    /// `Content-Encoding`); local files have no attributes.
    pub fn writer(&self, key: &str) -> BufWriter {
        let writer = BufWriter::new(Arc::clone(&self.store), self.path(key));
        if self.signer.is_some() {
            writer.with_attributes(Attributes::from_iter([
                (Attribute::ContentType, "application/gzip"),
                (Attribute::ContentDisposition, "attachment"),
            ]))
        } else {
            writer
        }
    }

    pub async fn head(&self, key: &str) -> Result<ObjectMeta, Error> {
        Ok(self.store.head(&self.path(key)).await?)
    }

    /// Reads the object, or the byte range `start..end` of it.
    pub async fn get(
        &self,
        key: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<GetResult, Error> {
        let opts = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        Ok(self.store.get_opts(&self.path(key), opts).await?)
    }

    /// Removes an object, and whatever an interrupted write of it left
    /// behind: a local store's staging files (`<key>#<n>`), an S3 bucket's
    /// incomplete multipart uploads of that key. A missing one is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        let completed = match self.store.delete(&self.path(key)).await {
            Ok(()) => true,
            Err(object_store::Error::NotFound { .. }) => false,
            Err(e) => return Err(e.into()),
        };
        // Each key is written once (a day's file is named by its claim), so
        // a key whose file was complete has no interrupted write to clean
        // up; only a missing file sends us looking through its directory,
        // which holds every earlier file of the same day until collected.
        if let Some(file) = self.local_file(key).filter(|_| !completed) {
            on_disk(move || remove_staged_files(&file))
                .await
                .map_err(|e| Error::Leftovers(e.to_string()))?;
        }
        if let Some(s3) = &self.signer {
            uploads::abort_uploads(s3, &self.region, &self.path(key)).await?;
        }
        Ok(())
    }

    /// How many unfinished writes of `key` are left: staging files of a local
    /// store, incomplete multipart uploads of a bucket.
    pub async fn leftovers(&self, key: &str) -> Result<usize, Error> {
        if let Some(file) = self.local_file(key) {
            return on_disk(move || staged_files(&file))
                .await
                .map(|files| files.len())
                .map_err(|e| Error::Leftovers(e.to_string()));
        }
        match &self.signer {
            Some(s3) => uploads::count_uploads(s3, &self.region, &self.path(key)).await,
            None => Ok(0),
        }
    }

    /// The file of `key` in a local store; None for a bucket.
    fn local_file(&self, key: &str) -> Option<std::path::PathBuf> {
        self.local_root
            .as_ref()
            .map(|root| root.join(self.path(key).as_ref()))
    }

    /// Makes a written object durable before it is published: on local
    /// storage its file and directory are synced; a bucket's completed
    /// upload is durable already.
    pub async fn make_durable(&self, key: &str) -> Result<(), Error> {
        let Some(file) = self.local_file(key) else {
            return Ok(());
        };
        on_disk(move || -> std::io::Result<()> {
            std::fs::File::open(&file)?.sync_all()?;
            if let Some(dir) = file.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(|source| Error::Sync {
            key: key.to_string(),
            source,
        })
    }

    /// A pre-signed GET URL of the object itself, valid for `ttl`; None for
    /// stores that cannot sign (local files).
    pub async fn presigned_get(&self, key: &str, ttl: Duration) -> Result<Option<String>, Error> {
        match &self.signer {
            None => Ok(None),
            Some(s3) => Ok(Some(
                s3.signed_url(http::Method::GET, &self.path(key), ttl)
                    .await?
                    .to_string(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn a_local_day_file_is_synced_and_its_leftovers_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(&format!("file://{}", dir.path().display())).unwrap();
        let mut w = store.writer("AC1/Messages/2024-06-01/1-1.json.gz");
        w.write_all(b"day").await.unwrap();
        w.shutdown().await.unwrap();
        store
            .make_durable("AC1/Messages/2024-06-01/1-1.json.gz")
            .await
            .unwrap();
        assert!(matches!(
            store
                .make_durable("AC1/Messages/2024-06-01/2-1.json.gz")
                .await,
            Err(Error::Sync { .. })
        ));
        // What a killed writer of another key leaves, and a file that only
        // looks alike; the file of the complete key is removed on its own.
        let day_dir = dir.path().join("AC1/Messages/2024-06-01");
        let killed = "AC1/Messages/2024-06-01/1-2.json.gz";
        std::fs::write(day_dir.join("1-2.json.gz#1"), b"partial").unwrap();
        std::fs::write(day_dir.join("1-2.json.gz#2"), b"partial").unwrap();
        std::fs::write(day_dir.join("1-2.json.gz#x"), b"other").unwrap();
        assert_eq!(store.leftovers(killed).await.unwrap(), 2);
        store.delete(killed).await.unwrap();
        assert_eq!(store.leftovers(killed).await.unwrap(), 0);
        assert!(day_dir.join("1-2.json.gz#x").exists());
        store
            .delete("AC1/Messages/2024-06-01/1-1.json.gz")
            .await
            .unwrap();
        assert!(!day_dir.join("1-1.json.gz").exists());
    }
}
