//! Limits: a client that trickles its headers or its body is cut off, connections past the
//! limit are closed, bodies past an API's size are refused, and an event stream nobody reads
//! is bounded (its subscriber is told why and cut off).

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{self, temp_dir};

/// Everything the server sends until it closes the connection (or `wait` passes: `None`).
pub(crate) async fn until_closed(stream: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let read = async {
        let mut buffer = [0u8; 65536];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buffer[..n]),
            }
        }
    };
    tokio::time::timeout(wait, read).await.ok().map(|()| seen)
}

#[tokio::test]
async fn a_client_that_trickles_is_cut_off() {
    let dir = temp_dir();
    let up = common::start_up(
        dir.path(),
        &[
            "--resources",
            "cpus:2;mem:1024",
            "--header-read-timeout",
            "1s",
            "--body-read-timeout",
            "1s",
        ],
    );
    // Headers that never end.
    let mut headers = TcpStream::connect(up.address()).await.expect("connect");
    headers
        .write_all(b"GET /master/state HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .expect("write");
    let seen = until_closed(&mut headers, Duration::from_secs(15)).await;
    assert!(seen.is_some(), "the connection is closed");
    // A body that never arrives whole.
    let mut body = TcpStream::connect(up.address()).await.expect("connect");
    body.write_all(
        b"POST /v2/apps HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
          Content-Length: 1000\r\n\r\n{\"id\": \"/slow\"",
    )
    .await
    .expect("write");
    let seen = until_closed(&mut body, Duration::from_secs(15))
        .await
        .expect("answered and closed");
    let answer = String::from_utf8_lossy(&seen);
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    let apps = up.get_text("/v2/apps").await;
    assert!(!apps.contains("slow"), "{apps}");
}

#[tokio::test]
async fn connections_past_the_limit_are_closed() {
    let dir = temp_dir();
    let up = common::start_up(
        dir.path(),
        &["--resources", "cpus:2;mem:1024", "--max-connections", "40"],
    );
    // Hold idle connections until the server closes new ones as it accepts them (its own
    // schedulers, agent and discovery hold some too).
    let mut held = Vec::new();
    let mut refused = false;
    for _ in 0..60 {
        let mut connection = TcpStream::connect(up.address()).await.expect("connect");
        if until_closed(&mut connection, Duration::from_millis(300))
            .await
            .is_some()
        {
            refused = true;
            break;
        }
        held.push(connection);
    }
    assert!(refused, "{} connections held, none refused", held.len());
    drop(held);
    let metrics: Value = common::wait_until(Duration::from_secs(10), "metrics", || async {
        let response = reqwest::get(format!("http://{}/metrics/snapshot", up.address()))
            .await
            .ok()?;
        response.json().await.ok()
    })
    .await;
    assert!(
        metrics["http/connections_refused_total"].as_f64() >= Some(1.0),
        "{metrics}"
    );
}

/// Posts `body` (JSON) to `path` over a raw connection (declared, or chunked) and reads the
/// answer while the body is still being written: the server answers as soon as it knows the
/// body is too large, so a client that waits to finish writing would meet a closed socket.
pub(crate) async fn post_while_writing(
    address: &str,
    path: &str,
    body: Vec<u8>,
    chunked: bool,
) -> String {
    let path = path.to_owned();
    let connection = TcpStream::connect(address).await.expect("connect");
    let (mut reader, mut writer) = connection.into_split();
    tokio::spawn(async move {
        let framing = if chunked {
            "Transfer-Encoding: chunked".to_owned()
        } else {
            format!("Content-Length: {}", body.len())
        };
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             {framing}\r\n\r\n"
        );
        let _ = writer.write_all(head.as_bytes()).await;
        for chunk in body.chunks(1 << 16) {
            let framed = if chunked {
                [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat()
            } else {
                chunk.to_vec()
            };
            if writer.write_all(&framed).await.is_err() {
                return;
            }
        }
        if chunked {
            let _ = writer.write_all(b"0\r\n\r\n").await;
        }
    });
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(20), reader.read(&mut answer))
        .await
        .expect("an answer")
        .expect("read");
    String::from_utf8_lossy(&answer[..read]).into_owned()
}

#[tokio::test]
async fn bodies_past_an_apis_size_are_refused() {
    let dir = temp_dir();
    let up = common::start_up(dir.path(), &["--resources", "cpus:2;mem:1024"]);
    let big = format!(
        r#"{{"id":"/big","cmd":"sleep 1","labels":{{"x":"{}"}}}}"#,
        "a".repeat(9 << 20)
    )
    .into_bytes();
    let declared = post_while_writing(&up.address(), "/v2/apps", big.clone(), false).await;
    assert!(declared.starts_with("HTTP/1.1 413"), "{declared}");
    assert!(
        declared.contains(r#"{"message":"#),
        "in Marathon's shape: {declared}"
    );
    let chunked = post_while_writing(&up.address(), "/v2/apps", big, true).await;
    assert!(chunked.starts_with("HTTP/1.1 413"), "{chunked}");
    let apps = up.get_text("/v2/apps").await;
    assert!(!apps.contains("/big"), "{}", &apps[..apps.len().min(200)]);
}

#[tokio::test]
async fn an_event_stream_nobody_reads_is_bounded() {
    let dir = temp_dir();
    let up = common::start_up(
        dir.path(),
        &[
            "--resources",
            "cpus:2;mem:1024",
            "--subscriber-queue-size",
            "256KB",
        ],
    );
    // An operator subscriber that never reads, with a small window so the kernel's buffers
    // do not hide it.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("buffer");
    let address = up.address().parse().expect("address");
    let mut idle = socket.connect(address).await.expect("connect");
    let call = r#"{"type":"SUBSCRIBE"}"#;
    idle.write_all(
        format!(
            "POST /api/v1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Accept: application/recordio\r\nContent-Length: {}\r\n\r\n{call}",
            call.len()
        )
        .as_bytes(),
    )
    .await
    .expect("subscribe");
    // Frameworks whose infos are large make large operator events.
    let label = "x".repeat(32 << 10);
    let client = reqwest::Client::new();
    common::wait_until(Duration::from_secs(60), "a subscriber cut off", || {
        let (client, label, up) = (&client, &label, &up);
        async move {
            for n in 0..8 {
                let body = json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": {
                    "user": "root", "name": format!("noisy-{n}"),
                    "labels": {"labels": [{"key": "big", "value": label}]}}}});
                // Subscribed, then gone at once: added, then disconnected.
                let _ = client
                    .post(format!("http://{}/api/v1/scheduler", up.address()))
                    .header("Content-Type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await;
            }
            let metrics: Value =
                serde_json::from_str(&up.get_text("/metrics/snapshot").await).ok()?;
            (metrics["master/event_stream_overflows"].as_f64()? >= 1.0).then_some(())
        }
    })
    .await;
    // What the idle subscriber gets once it reads: a bounded amount, ending with why.
    let seen = until_closed(&mut idle, Duration::from_secs(30))
        .await
        .expect("its stream ended");
    let text = String::from_utf8_lossy(&seen);
    assert!(
        text.contains("fell more than 262144 bytes of events behind"),
        "{}",
        &text[text.len().saturating_sub(300)..]
    );
    assert!(seen.len() < 16 << 20, "{} bytes", seen.len());
}
