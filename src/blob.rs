//! Day-file storage behind the `object_store` crate: a local directory
//! (`file://DIR`) or an S3-compatible bucket (`s3://bucket[/prefix]`, with
//! credentials, endpoint and region from the standard `AWS_*` variables).
//! Writes are staged and become visible whole.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
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
}

#[derive(Clone, Debug)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    /// Present for stores that can pre-sign URLs (S3).
    signer: Option<Arc<AmazonS3>>,
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
                prefix: String::new(),
            });
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(Error::Unsupported(url.to_string()));
            }
            let s3 = Arc::new(
                AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .build()?,
            );
            return Ok(BlobStore {
                store: s3.clone(),
                signer: Some(s3),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        Err(Error::Unsupported(url.to_string()))
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

    /// Removes an object; a missing one is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
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
