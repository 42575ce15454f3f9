//! Docker for tests: a small image made here (the engine has no registry), and questions
//! asked of the engine through its CLI, as an operator would.

use std::path::Path;
use std::process::Command;

/// The test image: Debian's static busybox in an otherwise empty root (`/bin/sh`, `httpd`,
/// `sleep`, ...), imported once per engine.
pub const BUSYBOX: &str = "agora-test/busybox:1";

/// Makes [`BUSYBOX`] present (idempotent; tests running side by side import the same bytes).
pub fn busybox_image() -> &'static str {
    if docker(&["image", "inspect", BUSYBOX]).is_ok() {
        return BUSYBOX;
    }
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "busybox-static is installed (scripts/install-test-deps.sh installs it)"
    );
    let root = tempfile::tempdir().expect("tempdir");
    for dir in ["bin", "tmp", "www", "etc"] {
        std::fs::create_dir_all(root.path().join(dir)).expect("mkdir");
    }
    std::fs::copy(busybox, root.path().join("bin/busybox")).expect("copy busybox");
    let applets = Command::new(busybox)
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&applets.stdout).lines() {
        let _ = std::os::unix::fs::symlink("busybox", root.path().join("bin").join(applet));
    }
    std::fs::write(
        root.path().join("etc/passwd"),
        "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
    )
    .expect("passwd");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -C {} -c . | docker import --change 'CMD [\"/bin/sh\"]' - {BUSYBOX} >/dev/null",
            root.path().display()
        ))
        .status()
        .expect("docker import");
    assert!(status.success(), "docker import of the test image");
    BUSYBOX
}

/// Runs the docker CLI; its stdout, or its stderr as the error.
pub fn docker(args: &[&str]) -> Result<String, String> {
    let output = Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

/// Ids of the containers (running or not) carrying `label=value`.
pub fn containers_labelled(label: &str, value: &str) -> Vec<String> {
    docker(&["ps", "-aq", "--filter", &format!("label={label}={value}")])
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}
