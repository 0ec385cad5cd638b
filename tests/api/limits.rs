//! Request limits over raw HTTP: request timeouts (408 for a stalled body, 503 past the
//! whole-request deadline, both problem+json) and CORS (off by default, an allow-list
//! when configured).

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// The request timeout of the timeout tests, seconds.
const TIMEOUT_S: u64 = 1;

/// Longest wait for the server's answer in these tests.
const ANSWER_WITHIN: Duration = Duration::from_secs(20);

/// The origin allowed in the CORS tests.
const VIEWER: &str = "https://viewer.example.org";

/// Send the head of a zip upload declaring 100 body bytes, then feed body bytes with
/// `pause` between them until the server answers; returns the raw answer.
async fn upload_slowly(app: &TestApp, pause: Duration) -> String {
    let addr = app.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/series HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/zip\r\n\
         Authorization: Bearer {}\r\nContent-Length: 100\r\nConnection: close\r\n\r\nPK",
        app.key
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        assert!(started.elapsed() < ANSWER_WITHIN, "no answer: {answer:?}");
        match tokio::time::timeout(pause, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            // No answer yet: a trickling client sends one more byte (ignoring a closed
            // connection: the answer may already be on its way).
            Err(_) if !pause.is_zero() => {
                let _ = stream.write_all(b"x").await;
            }
            Err(_) => {}
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

fn assert_problem_answer(answer: &str, status: u16, kind: &str, setting: &str) {
    assert!(
        answer.starts_with(&format!("HTTP/1.1 {status}")),
        "{answer}"
    );
    assert!(
        answer
            .to_lowercase()
            .contains("content-type: application/problem+json"),
        "{answer}"
    );
    assert!(answer.contains(&format!("/problems/{kind}\"")), "{answer}");
    assert!(answer.contains(setting), "{answer}");
}

/// A body that stops arriving is answered 408 problem+json after the timeout.
#[tokio::test]
async fn a_stalled_body_is_answered_408() {
    let app = spawn_app_configured(0, |c| {
        c.body_idle_timeout_s = TIMEOUT_S;
        c.request_timeout_s = TIMEOUT_S * 10;
    })
    .await;
    let answer = upload_slowly(&app, Duration::from_secs(TIMEOUT_S * 4)).await;
    assert_problem_answer(
        &answer,
        408,
        "request-body-timeout",
        "RADSCORE_BODY_IDLE_TIMEOUT_S",
    );
}

/// A body that trickles in (never idle for the timeout) still meets the whole-request
/// deadline: 503 problem+json with Retry-After.
#[tokio::test]
async fn a_request_past_its_deadline_is_answered_503() {
    let app = spawn_app_configured(0, |c| {
        c.body_idle_timeout_s = TIMEOUT_S * 10;
        c.request_timeout_s = TIMEOUT_S;
    })
    .await;
    let answer = upload_slowly(&app, Duration::from_millis(300)).await;
    assert_problem_answer(
        &answer,
        503,
        "request-timeout",
        "RADSCORE_REQUEST_TIMEOUT_S",
    );
    assert!(answer.to_lowercase().contains("retry-after: "), "{answer}");
}

async fn get_with_origin(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .get(app.url("/healthz"))
        .header("origin", origin)
        .send()
        .await
        .unwrap()
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(reqwest::Method::OPTIONS, app.url("/v1/series/x"))
        .header("origin", origin)
        .header("access-control-request-method", "DELETE")
        .send()
        .await
        .unwrap()
}

/// By default no CORS header is sent, so browsers refuse cross-origin calls; a preflight
/// is not approved.
#[tokio::test]
async fn cors_is_off_by_default() {
    let app = spawn_app_with_workers(1024, 0).await;
    let resp = get_with_origin(&app, VIEWER).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    let resp = preflight(&app, VIEWER).await;
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    assert!(resp.headers().get("access-control-allow-methods").is_none());
}

/// With an allow-list, a listed origin is allowed (also in a preflight for DELETE) and any
/// other origin is not.
#[tokio::test]
async fn cors_allows_only_the_configured_origins() {
    let app = spawn_app_configured(0, |c| {
        c.cors_origins = Some(format!("{VIEWER}, https://other.example.org"));
    })
    .await;
    let resp = get_with_origin(&app, VIEWER).await;
    assert_eq!(resp.headers()["access-control-allow-origin"], VIEWER);
    let resp = get_with_origin(&app, "https://evil.example.com").await;
    assert!(resp.headers().get("access-control-allow-origin").is_none());

    let resp = preflight(&app, VIEWER).await;
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(resp.headers()["access-control-allow-origin"], VIEWER);
    let methods = resp.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(methods.contains("DELETE"), "{methods}");
}

/// An origin that is not scheme://host[:port] is refused at start-up, naming it.
#[test]
fn invalid_cors_origins_are_refused() {
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: radscore::config::Config,
    }
    for bad in ["viewer.example.org", "https://viewer.example.org/?x=1"] {
        let cli = Cli::parse_from(["radscore", "--cors-origins", bad]);
        let err = cli.config.http_policy().unwrap_err().to_string();
        assert!(err.contains(bad), "{err}");
    }
    let cli = Cli::parse_from(["radscore", "--retention-hours=-1"]);
    assert!(cli.config.retention().is_err());
}

/// A job or batch document over the JSON limit (far below the upload limit: it is parsed
/// in memory) is refused with 413 before it is parsed, whether its length is declared or
/// streamed (chunked).
#[tokio::test]
async fn json_request_documents_over_their_limit_get_413() {
    use radscore::api::upload::MAX_JSON_BODY_BYTES;

    let app = spawn_app().await;
    let over = usize::try_from(MAX_JSON_BODY_BYTES).unwrap() + 1024;
    let mut body = String::with_capacity(over + 32);
    body.push_str("{\"lesions\":[");
    while body.len() < over {
        body.push_str("0,");
    }
    body.push_str("0]}");
    for path in ["/v1/jobs", "/v1/batches"] {
        let resp = app
            .client
            .post(app.url(path))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let (status, problem) = status_json(resp).await;
        assert_problem(
            status,
            &problem,
            413,
            "json-too-large",
            &["JSON request document"],
        );
        assert_eq!(problem["limit_bytes"], MAX_JSON_BODY_BYTES, "{problem}");

        let (status, problem, sent) =
            crate::ingestion::chunked_post(&app, path, "application/json", 4 * over).await;
        assert_problem(status, &problem, 413, "json-too-large", &["request body"]);
        assert!(
            sent < 4 * over,
            "refused while the body was still arriving ({sent} bytes)"
        );
    }
    let (status, _) = app.get_json("/healthz").await;
    assert_eq!(status, 200, "the server keeps serving");
}
