//! Blob storage behind `object_store`: a local directory (the default) or an S3-compatible
//! bucket, so that API replicas and workers on different machines share uploads.
//!
//! Keys are `/`-separated relative paths (`series/<id>/000000.dcm`,
//! `segmentations/<id>`). Both backends give the same behaviour for the operations below;
//! `tests/blob_store.rs` runs one contract against each.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::StoreError;

/// Most blob reads in flight at once when a whole series is read back. Local reads gain
/// little beyond a few; S3 round trips (tens of ms each) gain a lot, and a few dozen
/// connections stay well within what S3-compatible servers accept from one client.
const MAX_CONCURRENT_READS: usize = 16;

/// Files up to this size are stored with one put; larger ones stream as a multipart upload
/// in parts of this size (S3 needs at least 5 MiB per part but the last).
const MULTIPART_PART_BYTES: usize = 8 << 20;

/// Parts of one multipart upload in flight at once: memory is at most this many parts.
const MULTIPART_CONCURRENCY: usize = 2;

/// Bytes read from the file per step of a streamed upload.
const FILE_READ_BYTES: usize = 1 << 20;

/// Where blobs live, parsed from `RADSCORE_BLOB_URL`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobLocation {
    /// A local directory (`file:///var/lib/radscore/blobs`).
    Local(PathBuf),
    /// An S3-compatible bucket and a key prefix inside it (`s3://bucket/prefix`).
    S3 { bucket: String, prefix: String },
}

impl BlobLocation {
    /// Parse `file:///abs/dir` or `s3://bucket[/prefix]`.
    ///
    /// # Errors
    /// [`StoreError::BlobUrl`] naming what is wrong: another scheme, an empty bucket or a
    /// relative `file://` path.
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let invalid = |reason: &str| StoreError::BlobUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(invalid("the bucket name is empty"));
            }
            return Ok(BlobLocation::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(invalid(
                    "a file:// URL needs an absolute path (file:///dir)",
                ));
            }
            return Ok(BlobLocation::Local(PathBuf::from(path)));
        }
        Err(invalid("expected s3://bucket/prefix or file:///directory"))
    }
}

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

    /// A blob store in an S3-compatible bucket, under `prefix` (may be empty).
    ///
    /// Connection settings start from the standard `AWS_*` environment variables
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT`,
    /// `AWS_ALLOW_HTTP`, …, see `docs/deployment.md`); `options` then override them, each a
    /// pair of an `object_store` S3 configuration key (`aws_endpoint`, `aws_allow_http`,
    /// `aws_access_key_id`, …) and its value. The bucket must exist: it is not created.
    ///
    /// # Errors
    /// An unknown option key, or settings `object_store` refuses (e.g. an `http://`
    /// endpoint without `aws_allow_http`).
    pub fn s3(
        bucket: &str,
        prefix: &str,
        options: &[(String, String)],
    ) -> Result<Self, StoreError> {
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        for (key, value) in options {
            let key: AmazonS3ConfigKey = key.parse()?;
            builder = builder.with_config(key, value);
        }
        let s3 = builder.build()?;
        let inner: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, ObjectPath::parse(prefix)?))
        };
        Ok(BlobStore { inner })
    }

    /// Open the store a [`BlobLocation`] names (`options` as in [`BlobStore::s3`]).
    pub fn open(location: &BlobLocation, options: &[(String, String)]) -> Result<Self, StoreError> {
        match location {
            BlobLocation::Local(dir) => BlobStore::local(dir),
            BlobLocation::S3 { bucket, prefix } => BlobStore::s3(bucket, prefix, options),
        }
    }

    /// Store `bytes` under `key` (a `/`-separated relative path), replacing any blob there.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        let path = ObjectPath::parse(key)?;
        self.inner.put(&path, PutPayload::from_bytes(bytes)).await?;
        Ok(())
    }

    /// Store the content of `file` under `key`, streaming it: memory stays within a few
    /// parts whatever the file size (uploads spooled to disk, see `api::spool`).
    pub async fn put_file(&self, key: &str, file: &Path) -> Result<(), StoreError> {
        use tokio::io::AsyncReadExt;
        let len = tokio::fs::metadata(file).await?.len();
        if len <= MULTIPART_PART_BYTES as u64 {
            let bytes = tokio::fs::read(file).await?;
            return self.put(key, Bytes::from(bytes)).await;
        }
        let path = ObjectPath::parse(key)?;
        let upload = self.inner.put_multipart(&path).await?;
        let mut writer =
            object_store::WriteMultipart::new_with_chunk_size(upload, MULTIPART_PART_BYTES);
        let mut reader = tokio::fs::File::open(file).await?;
        let mut buf = vec![0u8; FILE_READ_BYTES];
        loop {
            let n = match reader.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e.into());
                }
            };
            if n == 0 {
                break;
            }
            writer.wait_for_capacity(MULTIPART_CONCURRENCY).await?;
            writer.write(&buf[..n]);
        }
        writer.finish().await?;
        Ok(())
    }

    /// Read the blob under `key`.
    pub async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let path = ObjectPath::parse(key)?;
        Ok(self.inner.get(&path).await?.bytes().await?)
    }

    /// Read several blobs, a bounded number at a time; the result is in the order of `keys`.
    pub async fn get_many(&self, keys: &[String]) -> Result<Vec<Bytes>, StoreError> {
        // Owned futures: borrowing closures here make the worker future not `Send`.
        let reads: Vec<_> = keys
            .iter()
            .map(|key| {
                let (store, key) = (self.clone(), key.clone());
                async move { store.get(&key).await }
            })
            .collect();
        futures::stream::iter(reads)
            .buffered(MAX_CONCURRENT_READS)
            .try_collect()
            .await
    }

    /// Keys under a prefix (whole path segments: `series/1` does not match `series/10/…`),
    /// sorted.
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

    /// Delete the blob at `key` and every blob under it as a prefix (used to roll back a
    /// refused upload: a series is a prefix, a segmentation one key). Missing blobs are
    /// not an error.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<(), StoreError> {
        for key in self.list(prefix).await? {
            self.delete_if_present(&key).await?;
        }
        // A key that is itself a blob is not listed under itself by S3 (listing adds `/`);
        // locally a prefix is a directory, which is not a blob.
        let path = ObjectPath::parse(prefix)?;
        match self.inner.head(&path).await {
            Ok(_) => self.delete_if_present(prefix).await,
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the store answers: lists at most one key (for readiness probes).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut listing = self.inner.list(None);
        match listing.next().await {
            Some(Err(e)) => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn delete_if_present(&self, key: &str) -> Result<(), StoreError> {
        match self.inner.delete(&ObjectPath::parse(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_s3_urls_with_and_without_prefix() {
        assert_eq!(
            BlobLocation::parse("s3://scans/radscore/prod/").unwrap(),
            BlobLocation::S3 {
                bucket: "scans".into(),
                prefix: "radscore/prod".into()
            }
        );
        assert_eq!(
            BlobLocation::parse("s3://scans").unwrap(),
            BlobLocation::S3 {
                bucket: "scans".into(),
                prefix: String::new()
            }
        );
    }

    #[test]
    fn parses_absolute_file_urls_only() {
        assert_eq!(
            BlobLocation::parse("file:///var/lib/blobs").unwrap(),
            BlobLocation::Local(PathBuf::from("/var/lib/blobs"))
        );
        assert!(BlobLocation::parse("file://relative/dir").is_err());
    }

    #[test]
    fn refuses_other_schemes_and_empty_buckets() {
        for url in [
            "gs://bucket",
            "http://host/bucket",
            "s3://",
            "s3:///prefix",
            "/var/blobs",
        ] {
            let err = BlobLocation::parse(url).unwrap_err().to_string();
            assert!(err.contains(url), "{url}: {err}");
        }
    }

    #[test]
    fn unknown_s3_option_keys_are_refused() {
        let options = [("aws_no_such_key".to_string(), "1".to_string())];
        assert!(BlobStore::s3("bucket", "", &options).is_err());
    }
}
