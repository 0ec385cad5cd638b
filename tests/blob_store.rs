//! Blob store contract: the same behaviour from the local directory store and from an
//! S3-compatible bucket (a real moto server on 127.0.0.1), so API replicas and workers
//! can switch backends without a change in what they see.

#[path = "support/moto.rs"]
mod moto;

use bytes::Bytes;
use radscore::store::{BlobLocation, BlobStore, StoreError};

use moto::MotoServer;

/// Every operation the API and the workers use, checked on one empty store.
async fn check_contract(store: &BlobStore) {
    store.ping().await.expect("an empty store answers");

    // Round trip of arbitrary binary content, and of an empty blob.
    let all_bytes: Bytes = (0..=255u8).cycle().take(70_000).collect::<Vec<_>>().into();
    store
        .put("series/1/000000.dcm", all_bytes.clone())
        .await
        .unwrap();
    store
        .put("series/1/000001.dcm", Bytes::new())
        .await
        .unwrap();
    assert_eq!(store.get("series/1/000000.dcm").await.unwrap(), all_bytes);
    assert!(store.get("series/1/000001.dcm").await.unwrap().is_empty());

    // A put replaces the blob.
    store
        .put("segmentations/a", Bytes::from_static(b"first"))
        .await
        .unwrap();
    store
        .put("segmentations/a", Bytes::from_static(b"second"))
        .await
        .unwrap();
    assert_eq!(&store.get("segmentations/a").await.unwrap()[..], b"second");

    // A missing key is NotFound, not an empty blob.
    match store.get("segmentations/missing").await {
        Err(StoreError::Blob(object_store::Error::NotFound { .. })) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }

    // Listing is by whole path segments and sorted.
    store
        .put("series/10/000000.dcm", Bytes::from_static(b"x"))
        .await
        .unwrap();
    store
        .put("series/1/000002.dcm", Bytes::from_static(b"y"))
        .await
        .unwrap();
    assert_eq!(
        store.list("series/1").await.unwrap(),
        [
            "series/1/000000.dcm",
            "series/1/000001.dcm",
            "series/1/000002.dcm"
        ]
    );
    assert!(store.list("series/2").await.unwrap().is_empty());

    // get_many returns contents in key order.
    let keys = store.list("series/1").await.unwrap();
    let contents = store.get_many(&keys).await.unwrap();
    assert_eq!(
        contents,
        [all_bytes, Bytes::new(), Bytes::from_static(b"y")]
    );

    // Rollback deletes a prefix (a series) or one key (a segmentation), nothing else.
    store.delete_prefix("series/1").await.unwrap();
    assert!(store.list("series/1").await.unwrap().is_empty());
    assert_eq!(
        store.list("series/10").await.unwrap(),
        ["series/10/000000.dcm"]
    );
    store.delete_prefix("segmentations/a").await.unwrap();
    assert!(store.get("segmentations/a").await.is_err());
    store
        .delete_prefix("segmentations/never-stored")
        .await
        .unwrap();

    // put_file streams a file from disk: one put when small, a multipart upload in 8 MiB
    // parts when large (20 MiB: three parts, the last short); both read back whole.
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..20u32 << 20).map(|i| (i % 251) as u8).collect();
    for (key, content) in [
        ("series/3/small.dcm", &big[..70_000]),
        ("series/3/big.dcm", &big[..]),
    ] {
        let path = dir.path().join("upload");
        std::fs::write(&path, content).unwrap();
        store.put_file(key, &path).await.unwrap();
        let back = store.get(key).await.unwrap();
        assert!(back.len() == content.len() && back == content, "{key}");
    }
    store.delete_prefix("series/3").await.unwrap();
    assert!(store.list("series/3").await.unwrap().is_empty());
}

/// The local directory store keeps the contract.
#[tokio::test]
async fn local_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().join("blobs").display());
    let store = BlobStore::open(&BlobLocation::parse(&url).unwrap(), &[]).unwrap();
    check_contract(&store).await;
}

/// The S3 store keeps the contract, and its blobs really sit in the bucket under the
/// configured prefix.
#[tokio::test]
async fn s3_store_keeps_the_contract_under_its_prefix() {
    let moto = MotoServer::start();
    moto.create_bucket("contract").await;
    let location = BlobLocation::parse("s3://contract/radscore/test").unwrap();
    let store = BlobStore::open(&location, &moto.options()).unwrap();

    check_contract(&store).await;

    // What the contract left behind, seen by a plain S3 listing.
    assert_eq!(
        moto.keys("contract").await,
        ["radscore/test/series/10/000000.dcm"]
    );
}

/// A bucket that does not exist makes the readiness check fail instead of passing.
#[tokio::test]
async fn s3_ping_fails_for_a_missing_bucket() {
    let moto = MotoServer::start();
    let store = BlobStore::s3("no-such-bucket", "", &moto.options()).unwrap();
    assert!(store.ping().await.is_err());
}
