//! The routes this change added that change state — the login API, the UI's sign-in and
//! sign-out: who may call them, that a web page cannot post to them (another site's request,
//! a `text/plain` body), and that what a client sends them is bounded in size and in time.

use std::time::Duration;

use reqwest::Method;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::common::{self, temp_dir};
use crate::security::limits::{post_while_writing, until_closed};

const CREDENTIALS: &str = r#"{"credentials": [{"principal": "ops", "secret": "ops-secret"}]}"#;

/// The routes, each with a body it takes (the login API JSON, the UI's forms).
const ROUTES: [(&str, &str, &str); 3] = [
    (
        "/acs/api/v1/auth/login",
        "application/json",
        r#"{"uid": "ops", "password": "ops-secret"}"#,
    ),
    (
        "/ui/login",
        "application/x-www-form-urlencoded",
        "principal=ops&secret=ops-secret",
    ),
    // Sign-out reads no body; one it is sent must still be a form.
    (
        "/ui/logout",
        "application/x-www-form-urlencoded",
        "next=%2F",
    ),
];

async fn post(
    up: &common::Process,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, reqwest::header::HeaderMap) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut request = client
        .request(Method::POST, format!("http://{}{path}", up.address()))
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    (response.status().as_u16(), response.headers().clone())
}

#[tokio::test]
async fn sign_in_and_out_take_no_page_no_flood_and_no_stranger() {
    let dir = temp_dir();
    let credentials = dir.path().join("credentials.json");
    std::fs::write(&credentials, CREDENTIALS).expect("write");
    let up = common::start_up(
        &dir.path().join("data"),
        &[
            "--resources",
            "cpus:1;mem:256",
            "--credentials",
            credentials.to_str().expect("utf8"),
            "--authenticate-http-readwrite",
            "--body-read-timeout",
            "1s",
        ],
    );
    let same_site = format!("http://{}", up.address());
    for (path, content_type, body) in ROUTES {
        // Another site's page, and a body a page can post without asking: refused first.
        let (status, _) = post(
            &up,
            path,
            &[
                ("Content-Type", content_type),
                ("Sec-Fetch-Site", "cross-site"),
            ],
            body,
        )
        .await;
        assert_eq!(status, 403, "{path} from another site");
        let (status, _) = post(
            &up,
            path,
            &[("Content-Type", "text/plain"), ("Origin", &same_site)],
            body,
        )
        .await;
        assert_eq!(status, 415, "{path} with text/plain");
        // Bounded: a body past the limit (1 MB for these) is refused while it is sent, and
        // one that trickles is cut off.
        let big = vec![b'x'; 2 << 20];
        let answer = post_while_writing(&up.address(), path, big, false).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        let mut slow = TcpStream::connect(up.address()).await.expect("connect");
        slow.write_all(
            format!(
                "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n\
                 Content-Length: 1000\r\n\r\nprincipal="
            )
            .as_bytes(),
        )
        .await
        .expect("write");
        let seen = until_closed(&mut slow, Duration::from_secs(15)).await;
        let seen = String::from_utf8_lossy(&seen.expect("answered and closed")).into_owned();
        // Sign-out reads no body: it answers at once; the others give up on it.
        let expected = if path == "/ui/logout" {
            "HTTP/1.1 303"
        } else {
            "HTTP/1.1 4"
        };
        assert!(seen.starts_with(expected), "{path}: {seen}");
    }

    // Who may call them: anyone, to trade a secret (not a token) for a token; sign-out only
    // forgets the cookie.
    let login = ROUTES[0];
    let json = [("Content-Type", login.1)];
    let (status, _) = post(&up, login.0, &json, login.2).await;
    assert_eq!(status, 200);
    let (status, _) = post(
        &up,
        login.0,
        &json,
        r#"{"uid": "ops", "password": "guessed"}"#,
    )
    .await;
    assert_eq!(status, 401);
    let form = [
        ("Content-Type", ROUTES[1].1),
        ("Origin", same_site.as_str()),
    ];
    let (status, headers) = post(&up, ROUTES[1].0, &form, ROUTES[1].2).await;
    assert_eq!(status, 303);
    assert!(headers.contains_key("set-cookie"), "signed in: {headers:?}");
    let (status, headers) = post(&up, ROUTES[1].0, &form, "principal=ops&secret=guessed").await;
    assert_eq!(status, 303);
    assert!(
        !headers.contains_key("set-cookie"),
        "a wrong secret signs no one in"
    );
    let (status, headers) = post(&up, ROUTES[2].0, &form, ROUTES[2].2).await;
    assert_eq!(status, 303);
    let cookie = headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(cookie.contains("Max-Age=0"), "{cookie}");
}
