//! TLS only: plain HTTP gets no response bytes; TLS 1.2 and 1.3 with AEAD suites; HSTS and the
//! other hygiene headers; graceful shutdown.

use crate::harness::{Backend, Server};
use reqwest::Method;
use rustls_pki_types::pem::PemObject as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_on_the_tls_port_gets_no_response_data() {
    let s = Server::start(Backend::Sqlite).await;
    let port = s.url.rsplit(':').next().unwrap();
    let mut tcp = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(
        std::time::Duration::from_secs(15),
        tcp.read_to_end(&mut buf),
    )
    .await
    .unwrap()
    .unwrap_or(0);
    assert_eq!(n, 0, "got {:?}", String::from_utf8_lossy(&buf));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hygiene_headers_and_405_with_allow() {
    let s = Server::start(Backend::Sqlite).await;
    let resp = s.get("/healthz").await;
    let h = resp.headers();
    assert!(
        h["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age=")
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["cache-control"], "no-store");
    let resp = s
        .client
        .delete(format!("{}/v1/keys/rotate", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
    let (st, v) = s
        .call("bvd_sa_wrong", Method::GET, "/v1/whoami", None)
        .await;
    assert_eq!(st, 401);
    assert_eq!(v["error"]["code"], "unauthenticated");
    let ready: serde_json::Value = s.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiates_tls13_and_tls12_with_aead_only() {
    let s = Server::start(Backend::Sqlite).await;
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let tls = tls_connect(&s, &[version]).await;
        let (_, conn) = tls.get_ref();
        assert_eq!(conn.protocol_version(), Some(version.version));
        let suite = format!("{:?}", conn.negotiated_cipher_suite().unwrap().suite());
        assert!(
            suite.contains("GCM") || suite.contains("CHACHA20_POLY1305"),
            "{suite}"
        );
    }
    s.stop().await;
}

async fn tls_connect(
    s: &Server,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use std::sync::Arc;
    let port: u16 = s.url.rsplit(':').next().unwrap().parse().unwrap();
    let pem = std::fs::read(s.dir.join("tls/dev-cert.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    connector
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_requests() {
    let s = Server::start(Backend::Sqlite).await;
    let (_t, key) = s.tenant("shutdown").await;
    s.customers(&key).await;
    let body =
        serde_json::json!({"records": [{"fields": {"email": "inflight@example.com"}}]}).to_string();
    let mut tls = tls_connect(&s, &[&rustls::version::TLS13]).await;
    let head = format!(
        "POST /v1/collections/customers/records?purpose=customer_support HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(&body.as_bytes()[..10]).await.unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    // Shutdown starts while the request is half sent.
    let url = s.url.clone();
    let stopping = tokio::spawn(s.stop());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let port = url.rsplit(':').next().unwrap();
    assert!(
        tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
            .await
            .is_err(),
        "no new connections during shutdown"
    );
    tls.write_all(&body.as_bytes()[10..]).await.unwrap();
    tls.flush().await.unwrap();
    let mut resp = Vec::new();
    let _ = tls.read_to_end(&mut resp).await;
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 201"), "{text}");
    stopping.await.unwrap();
}
