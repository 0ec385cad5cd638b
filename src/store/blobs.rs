//! Blob storage behind `object_store`: a local directory by default.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::StoreError;

/// Where uploads live. Cheap to clone.
#[derive(Clone, Debug)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
}

impl BlobStore {
    /// A blob store rooted at a local directory (created if missing).
    pub fn local(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)?;
        let fs = LocalFileSystem::new_with_prefix(dir)?;
        Ok(BlobStore {
            inner: Arc::new(fs),
        })
    }

    /// Store `bytes` under `key` (a `/`-separated relative path).
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        let path = ObjectPath::parse(key)?;
        self.inner.put(&path, PutPayload::from_bytes(bytes)).await?;
        Ok(())
    }

    /// Read the blob under `key`.
    pub async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let path = ObjectPath::parse(key)?;
        Ok(self.inner.get(&path).await?.bytes().await?)
    }

    /// Keys under a prefix, sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let path = ObjectPath::parse(prefix)?;
        let mut keys: Vec<String> = self
            .inner
            .list(Some(&path))
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await?;
        keys.sort();
        Ok(keys)
    }

    /// Delete every blob under a prefix (used to roll back a refused upload).
    pub async fn delete_prefix(&self, prefix: &str) -> Result<(), StoreError> {
        for key in self.list(prefix).await? {
            self.inner.delete(&ObjectPath::parse(key)?).await?;
        }
        Ok(())
    }
}
