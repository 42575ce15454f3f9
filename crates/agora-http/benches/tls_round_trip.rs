//! What TLS adds to one small call on a kept-alive connection through agora's own listener
//! (`agora_http::serve`): the same router answering 202 to a 200-byte JSON POST, over plain
//! TCP and over TLS, from the same blocking client (rustls' own, for TLS). The figure the
//! security benchmark's side-by-side measures through the whole master, without the master:
//! what is left is the listener and the TLS stack under it.
//!
//!     cargo bench -p agora-http --bench tls_round_trip
//!
//! A throw-away certificate is made with openssl in a temporary directory.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that cannot set up may stop

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

use agora_tls::tokio_rustls::rustls;
use axum::http::StatusCode;
use criterion::{Criterion, criterion_group, criterion_main};
use tokio_util::sync::CancellationToken;

fn certificate(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "basicConstraints=CA:FALSE"])
        .args(["-addext", "subjectAltName=DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    (cert, key)
}

/// One call: the request written whole, the answer read to the end of its headers (202, no
/// body).
fn call<S: Read + Write>(stream: &mut S, request: &[u8], buffer: &mut [u8]) {
    stream.write_all(request).unwrap();
    stream.flush().unwrap();
    let mut read = 0;
    while !buffer[..read].ends_with(b"\r\n\r\n") {
        let got = stream.read(&mut buffer[read..]).unwrap();
        assert!(got > 0, "the server closed the connection");
        read += got;
    }
    assert!(buffer.starts_with(b"HTTP/1.1 202"));
}

fn round_trip(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path());
    agora_tls::install_default_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let shutdown = CancellationToken::new();
    let router = axum::Router::new().route(
        "/api/v1/scheduler",
        axum::routing::post(|_: axum::body::Bytes| async { StatusCode::ACCEPTED }),
    );
    let server_tls = agora_http::ListenerTls {
        config: agora_tls::server(&cert, &key, None).unwrap(),
        accept_plain: false,
    };
    let mut addresses = Vec::new();
    for tls in [None, Some(server_tls)] {
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        addresses.push(listener.local_addr().unwrap());
        runtime.spawn(agora_http::serve(
            listener,
            router.clone(),
            agora_http::Limits::default(),
            Arc::new(agora_http::Refused::default()),
            tls,
            shutdown.clone(),
        ));
    }
    let body = format!("{{\"type\":\"RECONCILE\",\"pad\":\"{}\"}}", "x".repeat(170));
    let request = format!(
        "POST /api/v1/scheduler HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes();
    let mut buffer = vec![0u8; 4096];
    let mut group = c.benchmark_group("one call, kept alive");

    let mut plain = TcpStream::connect(addresses[0]).unwrap();
    plain.set_nodelay(true).unwrap();
    group.bench_function("plain", |b| {
        b.iter(|| call(&mut plain, &request, &mut buffer));
    });

    let client = agora_tls::pinned(&cert, None).unwrap();
    let connection = rustls::ClientConnection::new(
        Arc::new(client),
        rustls::pki_types::ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let tcp = TcpStream::connect(addresses[1]).unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    group.bench_function("TLS", |b| {
        b.iter(|| call(&mut tls, &request, &mut buffer));
    });
    group.finish();
    shutdown.cancel();
}

criterion_group!(benches, round_trip);
criterion_main!(benches);
