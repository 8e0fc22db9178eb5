//! Rotation under write load and a restart in the middle of the rewrap: every record still
//! opens, progress reaches 100 %, and the old version can then be retired.

use crate::harness::{BOTH, Options, Server};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

async fn write_batch(s: &Server, key: &str, n: usize, tag: &str) -> Vec<(String, String)> {
    let records: Vec<Value> = (0..n)
        .map(|i| json!({"fields": {"email": format!("{tag}{i}@example.com")}}))
        .collect();
    let w = s
        .ok(
            key,
            Method::POST,
            "/v1/collections/customers/records?purpose=customer_support",
            Some(json!({"records": records})),
        )
        .await;
    w["records"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (
                r["id"].as_str().unwrap().to_owned(),
                format!("{tag}{i}@example.com"),
            )
        })
        .collect()
}

async fn wait_for_full_rewrap(s: &Server, key: &str) -> Value {
    for _ in 0..600 {
        let st = s.ok(key, Method::GET, "/v1/keys", None).await;
        if st["rewrap_pending"] == 0 {
            return st;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("rewrap did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_under_load_restart_mid_rewrap_everything_opens() {
    for backend in BOTH {
        // First life: no background job, so the restart is certain to land mid-rewrap.
        let s = Server::start_with(
            backend,
            Options {
                rewrap_job: false,
                rewrap_batch: 25,
                ..Options::default()
            },
        )
        .await;
        let (_t, key) = s.tenant("rotation").await;
        s.customers(&key).await;
        let mut all = write_batch(&s, &key, 300, "first").await;
        let st = s.ok(&key, Method::POST, "/v1/keys/rotate", None).await;
        assert_eq!(st["active_version"], 2);
        assert_eq!(st["rewrap_pending"], 300);
        let (moved, remaining) = s.vault.rewrap_step(25).await.unwrap();
        assert_eq!((moved, remaining), (25, 275));
        let (st, v) = s.call(&key, Method::POST, "/v1/keys/1/retire", None).await;
        assert_eq!(st, 409, "a version in use cannot be retired: {v}");
        let (cfg, tmp) = s.stop().await;

        // Second life: the job resumes; writes and another rotation happen while it runs.
        let s = Server::start_config(cfg, true).await;
        let writer = {
            let (client, url, key) = (s.client.clone(), s.url.clone(), key.clone());
            tokio::spawn(async move {
                let mut out = Vec::new();
                for round in 0..10 {
                    let records: Vec<Value> = (0..20).map(|i| json!({"fields": {"email": format!("load{round}x{i}@example.com")}})).collect();
                    let w: Value = client
                        .post(format!(
                            "{url}/v1/collections/customers/records?purpose=customer_support"
                        ))
                        .bearer_auth(&key)
                        .json(&json!({"records": records}))
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    for (i, r) in w["records"].as_array().unwrap().iter().enumerate() {
                        out.push((
                            r["id"].as_str().unwrap().to_owned(),
                            format!("load{round}x{i}@example.com"),
                        ));
                    }
                }
                out
            })
        };
        let mid = s.ok(&key, Method::POST, "/v1/keys/rotate", None).await;
        assert_eq!(mid["active_version"], 3);
        all.extend(writer.await.unwrap());
        let done = wait_for_full_rewrap(&s, &key).await;
        assert_eq!(done["rewrap_progress_percent"], 100.0);
        assert_eq!(done["versions"][2]["subjects"], 500);
        for v in [1, 2] {
            let st = s
                .ok(&key, Method::POST, &format!("/v1/keys/{v}/retire"), None)
                .await;
            assert_eq!(st["versions"][v - 1]["state"], "retired");
        }
        let (st, _) = s.call(&key, Method::POST, "/v1/keys/3/retire", None).await;
        assert_eq!(st, 409, "the active version cannot be retired");
        for chunk in all.chunks(500) {
            let ids: Vec<&str> = chunk.iter().map(|(id, _)| id.as_str()).collect();
            let r = s.ok(&key, Method::POST, "/v1/collections/customers/records/batch-get?purpose=customer_support&view=plain", Some(json!({"ids": ids}))).await;
            assert!(r["missing"].as_array().unwrap().is_empty());
            for (rec, (_, email)) in r["records"].as_array().unwrap().iter().zip(chunk) {
                assert_eq!(rec["fields"]["email"], email.as_str());
            }
        }
        let metrics = s.metrics().await;
        assert!(
            metrics.contains("boveda_rewrap_pending"),
            "rewrap progress is a metric"
        );
        s.stop().await;
        drop(tmp);
    }
}
