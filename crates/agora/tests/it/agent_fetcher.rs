//! The fetcher, with real servers: a tarball downloaded over HTTP (through a redirect) is
//! extracted and run, a script made executable under its output name, a zip and a local file
//! fetched, all given to the task's user; a cached URI is downloaded once; HTTPS verifies the
//! server against the roots the agent trusts; a failed fetch is TASK_FAILED with
//! REASON_FETCHER_FAILED, and an unknown user fails the launch.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::common;
use crate::common::*;
use agora_client::Scheduler;
use agora_types::TaskState;
use serde_json::{Value, json};

fn run(command: &str, args: &[&str], directory: &Path) {
    let status = std::process::Command::new(command)
        .args(args)
        .current_dir(directory)
        .status()
        .unwrap_or_else(|e| panic!("{command}: {e}"));
    assert!(status.success(), "{command} {args:?} failed");
}

/// Lets every user traverse and read `dir` (a temp dir is its creator's only).
fn open_to_all(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Serves `root` over HTTP, counting requests per path; `/moved/<name>` redirects to
/// `/<name>`.
async fn serve_files(root: PathBuf) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    let hits = Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let seen = hits.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let root = root.clone();
        let seen = seen.clone();
        async move {
            use axum::response::IntoResponse;
            let path = uri.path().to_owned();
            seen.lock().unwrap().push(path.clone());
            if let Some(rest) = path.strip_prefix("/moved/") {
                return axum::response::Redirect::temporary(&format!("/{rest}")).into_response();
            }
            match std::fs::read(root.join(path.trim_start_matches('/'))) {
                Ok(bytes) => bytes.into_response(),
                Err(_) => axum::http::StatusCode::NOT_FOUND.into_response(),
            }
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, hits)
}

/// Launches one command task with `uris` (and a user) on the next offer.
async fn launch_with_uris(
    scheduler: &mut Scheduler,
    id: &str,
    command: &str,
    uris: Value,
    user: Option<&str>,
) {
    launch_built_on_next_offer(scheduler, |offer| {
        let mut task = command_task(id, offer, command, 0.1, 32.0);
        if let Some(info) = task.command.as_mut() {
            info.uris = serde_json::from_value(uris).unwrap();
            info.user = user.map(str::to_owned);
        }
        vec![task]
    })
    .await;
}

/// Launches a task fetching `uri` (as `user`), which must fail to fetch; its message.
async fn fetch_failure(
    scheduler: &mut Scheduler,
    id: &str,
    uri: &str,
    user: Option<&str>,
) -> String {
    launch_with_uris(scheduler, id, "true", json!([{"value": uri}]), user).await;
    let status = wait_for_state(scheduler, id, TaskState::Failed, Duration::from_secs(20)).await;
    assert_eq!(
        status.reason.as_deref(),
        Some("REASON_FETCHER_FAILED"),
        "{id}: {status:?}"
    );
    status.message.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetched_archives_are_extracted_run_and_cached() {
    let dir = temp_dir();
    // The task's user reads local files itself: it must be able to reach them.
    open_to_all(dir.path());
    let files = dir.path().join("files");
    write_executable(
        &files.join("build/app/run.sh"),
        "#!/bin/sh\necho \"app ran as $(id -un)\"\n",
    );
    run(
        "tar",
        &["czf", "../app.tar.gz", "app"],
        &files.join("build"),
    );
    write_executable(&files.join("tool.sh"), "#!/bin/sh\necho tool ran\n");
    std::fs::write(files.join("build/inner.txt"), "zipped\n").unwrap();
    run(
        "python3",
        &["-m", "zipfile", "-c", "../bundle.zip", "inner.txt"],
        &files.join("build"),
    );
    std::fs::write(files.join("cached.txt"), "first\n").unwrap();
    let local = dir.path().join("notes.txt");
    std::fs::write(&local, "noted\n").unwrap();
    let (server, hits) = serve_files(files.clone()).await;

    let up = start_up(
        &dir.path().join("data"),
        &["--resources", "cpus:2;mem:1024"],
    );
    let mut scheduler = subscribe(&up.address(), framework_info("fetching")).await;
    let uris = json!([
        {"value": format!("http://{server}/moved/app.tar.gz")},
        {"value": format!("http://{server}/tool.sh"), "executable": true, "output_file": "bin/tool"},
        {"value": format!("http://{server}/bundle.zip")},
        {"value": format!("file://{}", local.display())},
    ]);
    launch_with_uris(
        &mut scheduler,
        "fetched",
        "./app/run.sh && bin/tool && cat inner.txt notes.txt",
        uris,
        Some("nobody"),
    )
    .await;
    wait_for_state(
        &mut scheduler,
        "fetched",
        TaskState::Finished,
        Duration::from_secs(20),
    )
    .await;
    let stdout = task_stdout(&up.address(), "fetched").await;
    assert_eq!(
        stdout, "app ran as nobody\ntool ran\nzipped\nnoted\n",
        "{stdout}"
    );
    // The archive stays beside what it held, as in Mesos.
    let (_, sandbox) = executor_directory(&up.address(), "fetched").await;
    assert!(Path::new(&sandbox).join("app.tar.gz").exists());

    // A cached URI is downloaded once; later tasks get the cache's copy.
    let cached = json!([{"value": format!("http://{server}/cached.txt"), "cache": true}]);
    launch_with_uris(
        &mut scheduler,
        "cached-1",
        "cat cached.txt",
        cached.clone(),
        None,
    )
    .await;
    wait_for_state(
        &mut scheduler,
        "cached-1",
        TaskState::Finished,
        Duration::from_secs(20),
    )
    .await;
    std::fs::write(files.join("cached.txt"), "second\n").unwrap();
    launch_with_uris(&mut scheduler, "cached-2", "cat cached.txt", cached, None).await;
    wait_for_state(
        &mut scheduler,
        "cached-2",
        TaskState::Finished,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(task_stdout(&up.address(), "cached-2").await, "first\n");
    let downloads = hits
        .lock()
        .unwrap()
        .iter()
        .filter(|p| p.as_str() == "/cached.txt")
        .count();
    assert_eq!(downloads, 1, "one download for two cached fetches");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fetch_or_an_unknown_user_fails_the_task() {
    let dir = temp_dir();
    open_to_all(dir.path());
    // Root may read it; the task's user may not, so neither may the task's fetch.
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "root only\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let (server, _) = serve_files(files).await;
    let up = start_up(
        &dir.path().join("data"),
        &["--resources", "cpus:2;mem:1024"],
    );
    let mut scheduler = subscribe(&up.address(), framework_info("unfetched")).await;
    for (id, uri) in [
        ("missing", format!("http://{server}/missing.tgz")),
        ("nowhere", "hdfs://namenode/app.tgz".to_owned()),
        ("refused", "http://127.0.0.1:1/app.tgz".to_owned()),
    ] {
        let message = fetch_failure(&mut scheduler, id, &uri, None).await;
        assert!(message.contains(&uri), "{id}: {message}");
    }

    let uri = format!("file://{}", secret.display());
    let message = fetch_failure(&mut scheduler, "snooping", &uri, Some("nobody")).await;
    assert!(message.contains("Permission denied"), "{message}");

    launch_with_uris(
        &mut scheduler,
        "stranger",
        "true",
        json!([]),
        Some("no-such-user"),
    )
    .await;
    let status = wait_for_state(
        &mut scheduler,
        "stranger",
        TaskState::Failed,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(
        status.reason.as_deref(),
        Some("REASON_CONTAINER_LAUNCH_FAILED")
    );
    assert!(
        status.message.unwrap_or_default().contains("no-such-user"),
        "names the user"
    );
}

/// A test CA and a server certificate for `localhost` (and no IP address) signed by it.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca = common::tls::TestCa::new(dir);
    let server = ca.issue("server", "DNS:localhost");
    (ca.cert, server.cert, server.key)
}

/// A child process killed when dropped (a failed assertion must not leave it serving).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Python's HTTPS file server on 127.0.0.1; returns it and its port.
fn https_server(root: &Path, cert: &Path, key: &Path) -> (Killed, u16) {
    // `/downgrade` redirects to plain HTTP.
    let script = "import http.server, ssl, sys, os\n\
        os.chdir(sys.argv[1])\n\
        class Handler(http.server.SimpleHTTPRequestHandler):\n\
        \x20   def do_GET(self):\n\
        \x20       if self.path == '/downgrade':\n\
        \x20           self.send_response(302)\n\
        \x20           self.send_header('Location', 'http://localhost:1/secret.txt')\n\
        \x20           self.end_headers()\n\
        \x20       else:\n\
        \x20           super().do_GET()\n\
        server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)\n\
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
        context.load_cert_chain(sys.argv[2], sys.argv[3])\n\
        server.socket = context.wrap_socket(server.socket, server_side=True)\n\
        print(server.server_address[1], flush=True)\n\
        server.serve_forever()\n";
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(root)
        .arg(cert)
        .arg(key)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let port = line.trim().parse().expect("the server's port");
    (Killed(child), port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_servers_are_verified() {
    let dir = temp_dir();
    let (ca, cert, key) = certificates(dir.path());
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("secret.txt"), "over tls\n").unwrap();
    let (_server, port) = https_server(&files, &cert, &key);

    // The agent trusts the test CA (as an operator would add one to the machine's roots).
    let ca = ca.display().to_string();
    let up = start_up_with_env(
        &dir.path().join("data"),
        &["--resources", "cpus:2;mem:1024"],
        &[("SSL_CERT_FILE", ca.as_str())],
    );
    let mut scheduler = subscribe(&up.address(), framework_info("tls")).await;
    let trusted = json!([{"value": format!("https://localhost:{port}/secret.txt")}]);
    launch_with_uris(&mut scheduler, "trusted", "cat secret.txt", trusted, None).await;
    wait_for_state(
        &mut scheduler,
        "trusted",
        TaskState::Finished,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(task_stdout(&up.address(), "trusted").await, "over tls\n");

    // The same server by an address its certificate does not name: refused.
    let uri = format!("https://127.0.0.1:{port}/secret.txt");
    let message = fetch_failure(&mut scheduler, "mismatch", &uri, None).await;
    assert!(message.to_lowercase().contains("certificate"), "{message}");
    // What was asked for over TLS is not taken in the clear.
    let uri = format!("https://localhost:{port}/downgrade");
    let message = fetch_failure(&mut scheduler, "downgraded", &uri, None).await;
    assert!(
        message.contains("refused a redirect from https"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_brings_no_more_than_the_agent_allows() {
    let dir = temp_dir();
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("small.txt"), "x".repeat(512)).unwrap();
    std::fs::write(files.join("large.txt"), "x".repeat(4096)).unwrap();
    let (server, _) = serve_files(files).await;
    let up = start_up(
        &dir.path().join("data"),
        &[
            "--resources",
            "cpus:2;mem:1024",
            "--fetcher-max-size",
            "1KB",
        ],
    );
    let mut scheduler = subscribe(&up.address(), framework_info("bounded")).await;
    let small = json!([{"value": format!("http://{server}/small.txt")}]);
    launch_with_uris(&mut scheduler, "small", "wc -c < small.txt", small, None).await;
    wait_for_state(
        &mut scheduler,
        "small",
        TaskState::Finished,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(task_stdout(&up.address(), "small").await.trim(), "512");
    for (id, uri) in [
        ("large", format!("http://{server}/large.txt")),
        // A file that never ends.
        ("endless", "file:///dev/zero".to_owned()),
    ] {
        let message = fetch_failure(&mut scheduler, id, &uri, None).await;
        assert!(message.contains("--fetcher-max-size"), "{id}: {message}");
    }
}

/// An archive may carry links; a later URI of the same task must not be written through one,
/// out of the sandbox (the fetcher writes as root).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_fetch_is_written_through_a_link_an_archive_planted() {
    let dir = temp_dir();
    open_to_all(dir.path());
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let content = dir.path().join("content");
    std::fs::create_dir_all(&content).unwrap();
    std::os::unix::fs::symlink(&outside, content.join("out")).unwrap();
    std::os::unix::fs::symlink(outside.join("target"), content.join("file")).unwrap();
    run("tar", &["-czf", "../links.tar.gz", "out", "file"], &content);
    let payload = dir.path().join("payload.txt");
    std::fs::write(&payload, "written by root\n").unwrap();
    let up = start_up(
        &dir.path().join("data"),
        &["--resources", "cpus:2;mem:1024"],
    );
    let mut scheduler = subscribe(&up.address(), framework_info("linked")).await;
    let archive = format!("file://{}", dir.path().join("links.tar.gz").display());
    let payload = format!("file://{}", payload.display());
    for (id, output_file, words) in [
        (
            "through-a-directory",
            "out/pwned",
            "leads out of the sandbox",
        ),
        ("onto-a-link", "file", "is a link in the sandbox"),
    ] {
        let uris = json!([{"value": archive, "extract": true},
                          {"value": payload, "output_file": output_file}]);
        launch_with_uris(&mut scheduler, id, "true", uris, None).await;
        let status = wait_for_state(
            &mut scheduler,
            id,
            TaskState::Failed,
            Duration::from_secs(20),
        )
        .await;
        let message = status.message.unwrap_or_default();
        assert!(message.contains(words), "{id}: {message}");
    }
    let written: Vec<_> = std::fs::read_dir(&outside).unwrap().flatten().collect();
    assert!(
        written.is_empty(),
        "written outside the sandbox: {written:?}"
    );
}
