//! Erasure by crypto-shredding: after `DELETE /v1/subjects/{id}`, that subject's ciphertexts do
//! not open, even from a copy of the data taken before the erase.

use crate::harness::{Backend, Server};
use boveda_store::Store as _;
use reqwest::Method;
use serde_json::json;

fn copy_data(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in ["data.db", "data.db-wal"] {
        if from.join(f).exists() {
            std::fs::copy(from.join(f), to.join(f)).unwrap();
        }
    }
}

fn copy_keys(from: &std::path::Path, to: &std::path::Path) {
    for f in ["keys.db", "keys.db-wal"] {
        let _ = std::fs::remove_file(to.join(f));
        if from.join(f).exists() {
            std::fs::copy(from.join(f), to.join(f)).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erased_subject_does_not_open_even_from_an_earlier_copy() {
    let s = Server::start(Backend::Sqlite).await;
    let (tenant, key) = s.tenant("erasure").await;
    s.customers(&key).await;
    let w = s
        .ok(
            &key,
            Method::POST,
            "/v1/collections/customers/records?purpose=customer_support",
            Some(json!({"records": [
                {"fields": {"email": "erase.me@example.com", "phone": "13800001111"}},
                {"fields": {"email": "keep.me@example.com", "phone": "13800002222"}}
            ]})),
        )
        .await;
    let erased = w["records"][0]["subject_id"]
        .as_str()
        .unwrap()
        .parse::<boveda_core::SubjectId>()
        .unwrap();
    let kept = w["records"][1]["subject_id"]
        .as_str()
        .unwrap()
        .parse::<boveda_core::SubjectId>()
        .unwrap();
    let tenant: boveda_core::TenantId = tenant.parse().unwrap();

    // The wrapped key as it was, to look for it in the key files afterwards.
    // (Read from the key file itself: the server owns its data directory.)
    let wrapped: Vec<u8> = rusqlite::Connection::open(s.dir.join("keys.db"))
        .unwrap()
        .query_row(
            "SELECT wrapped_dek FROM subject_keys WHERE tenant = ?1 AND subject = ?2",
            [&tenant.as_bytes()[..], &erased.as_bytes()[..]],
            |r| r.get(0),
        )
        .unwrap();

    let backup = tempfile::tempdir().unwrap();
    copy_data(&s.dir, backup.path());

    s.ok(
        &key,
        Method::DELETE,
        &format!("/v1/subjects/{erased}?purpose=data_subject_request"),
        None,
    )
    .await;
    let (cfg, tmp) = s.stop().await;

    // The destroyed key is gone from the key files, journal included.
    for f in ["keys.db", "keys.db-wal"] {
        if let Ok(bytes) = std::fs::read(cfg.data_dir.join(f)) {
            assert!(
                !bytes
                    .windows(wrapped.len())
                    .any(|w| w == wrapped.as_slice()),
                "wrapped key still in {f}"
            );
        }
    }

    // Restore the old data next to the live keys, as an attacker with a backup would.
    copy_keys(&cfg.data_dir, backup.path());
    std::fs::copy(
        cfg.data_dir.join("root.key"),
        backup.path().join("root.key"),
    )
    .unwrap();
    let store = std::sync::Arc::new(
        boveda_store::sqlite::SqliteStore::open(backup.path())
            .await
            .unwrap(),
    );
    let root = boveda_crypto::RootKey::from_base64(
        &std::fs::read_to_string(backup.path().join("root.key")).unwrap(),
    )
    .unwrap();
    let vault = boveda_core::Vault::open(store.clone(), root, Default::default())
        .await
        .unwrap();
    let ids: Vec<boveda_core::RecordId> = w["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().parse().unwrap())
        .collect();
    let rows = store.records(tenant, "customers", &ids).await.unwrap();
    assert_eq!(
        rows.len(),
        2,
        "the old copy still holds both records' ciphertexts"
    );
    for row in rows {
        let opened = vault.danger_open_sealed(tenant, &row, "email").await;
        if row.subject == erased {
            assert!(
                opened.is_err(),
                "an erased subject's ciphertext opened from a backup"
            );
        } else {
            assert_eq!(row.subject, kept);
            assert_eq!(
                opened.unwrap().expose(),
                "keep.me@example.com",
                "the method does open live subjects"
            );
        }
    }
    drop(tmp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_twice_or_another_tenants_subject_is_not_found() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let s = Server::start(backend).await;
        let (_a, key) = s.tenant("erase-a").await;
        s.customers(&key).await;
        let w = s
            .ok(
                &key,
                Method::POST,
                "/v1/collections/customers/records?purpose=customer_support",
                Some(json!({"records": [{"fields": {"email": "a@example.com"}}]})),
            )
            .await;
        let sid = w["records"][0]["subject_id"].as_str().unwrap();
        s.ok(
            &key,
            Method::DELETE,
            &format!("/v1/subjects/{sid}?purpose=data_subject_request"),
            None,
        )
        .await;
        let (st, _) = s
            .call(
                &key,
                Method::DELETE,
                &format!("/v1/subjects/{sid}?purpose=data_subject_request"),
                None,
            )
            .await;
        assert_eq!(st, 404);
        // Writing to an erased subject is refused: its key is gone.
        let (st, _) = s
            .call(
                &key,
                Method::POST,
                "/v1/collections/customers/records?purpose=customer_support",
                Some(
                    json!({"records": [{"subject_id": sid, "fields": {"email": "b@example.com"}}]}),
                ),
            )
            .await;
        assert_eq!(st, 404);
        s.stop().await;
    }
}
