//! Day-file storage behind the `object_store` crate: one handle for a local
//! directory (and, later, S3). Writes are staged and become visible whole.

use std::sync::Arc;

use bytes::Bytes;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, GetResult, ObjectMeta, ObjectStore};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unsupported storage URL {0:?}: this build supports file:// only")]
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
}

impl BlobStore {
    pub fn open(url: &str) -> Result<BlobStore, Error> {
        let Some(dir) = url.strip_prefix("file://") else {
            return Err(Error::Unsupported(url.to_string()));
        };
        std::fs::create_dir_all(dir).map_err(|source| Error::Directory {
            path: dir.to_string(),
            source,
        })?;
        let fs = LocalFileSystem::new_with_prefix(dir)?;
        Ok(BlobStore {
            store: Arc::new(fs),
        })
    }

    #[cfg(test)]
    pub fn in_memory() -> BlobStore {
        BlobStore {
            store: Arc::new(object_store::memory::InMemory::new()),
        }
    }

    /// A streaming writer; nothing is visible at `key` until it is shut down.
    pub fn writer(&self, key: &str) -> BufWriter {
        BufWriter::new(Arc::clone(&self.store), Path::from(key))
    }

    pub async fn head(&self, key: &str) -> Result<ObjectMeta, Error> {
        Ok(self.store.head(&Path::from(key)).await?)
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
        Ok(self.store.get_opts(&Path::from(key), opts).await?)
    }

    pub async fn read_all(&self, key: &str) -> Result<Bytes, Error> {
        Ok(self.store.get(&Path::from(key)).await?.bytes().await?)
    }

    /// Removes an object; a missing one is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
