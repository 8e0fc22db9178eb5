//! Every route is in /openapi.json and every documented route is served.

use crate::harness::{Backend, Server};
use boveda_server::routes;
use reqwest::Method;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_documented_and_served() {
    let s = Server::start(Backend::Sqlite).await;
    let (_, key) = s.tenant("openapi").await;
    let doc: serde_json::Value = s.get("/openapi.json").await.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = 0;
    for (_, ops) in paths {
        documented += ops.as_object().unwrap().len();
    }
    assert_eq!(documented, routes().len(), "one operation per route");
    for (r, _) in routes() {
        assert!(
            doc["paths"][r.path][r.method.to_lowercase()]["summary"].is_string(),
            "{} {} is not documented",
            r.method,
            r.path
        );
        let path = r.path.replace(['{', '}'], "x");
        let (st, v) = s
            .call(
                &key,
                Method::from_bytes(r.method.as_bytes()).unwrap(),
                &path,
                None,
            )
            .await;
        assert_ne!(st, 405, "{} {} is not served", r.method, r.path);
        assert_ne!(
            v["error"]["code"], "route_not_found",
            "{} {} is not served",
            r.method, r.path
        );
    }
    // And a route that does not exist is reported as such.
    let (st, v) = s.call(&key, Method::GET, "/v1/nothing-here", None).await;
    assert_eq!(st, 404);
    assert_eq!(v["error"]["code"], "route_not_found");
    s.stop().await;
}
