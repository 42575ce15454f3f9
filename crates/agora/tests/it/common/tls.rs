//! A throw-away certificate authority, made with the openssl CLI as an operator would.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA in a directory of its own, and the certificates it issues there.
pub struct TestCa {
    dir: PathBuf,
    /// The CA's certificate (PEM), what clients trust.
    pub cert: PathBuf,
}

/// One issued certificate and its key.
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("openssl: {e}"));
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

const EC: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

impl TestCa {
    /// A new CA (a day's validity) in `dir`.
    pub fn new(dir: &Path) -> TestCa {
        std::fs::create_dir_all(dir).expect("mkdir");
        let mut args = vec!["req", "-x509"];
        args.extend(EC);
        args.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=agora test CA",
        ]);
        openssl(dir, &args);
        TestCa {
            dir: dir.to_path_buf(),
            cert: dir.join("ca.pem"),
        }
    }

    /// A certificate for `names` (`DNS:localhost,IP:127.0.0.1`), good for servers and
    /// clients, as `<name>.pem` and `<name>.key`.
    pub fn issue(&self, name: &str, names: &str) -> Issued {
        let (key, csr, cert, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        let mut args = vec!["req"];
        args.extend(EC);
        let subject = format!("/CN={name}");
        args.extend(["-keyout", &key, "-out", &csr, "-subj", &subject]);
        openssl(&self.dir, &args);
        std::fs::write(
            self.dir.join(&ext),
            format!(
                "subjectAltName={names}\nbasicConstraints=CA:FALSE\n\
                 extendedKeyUsage=serverAuth,clientAuth\n"
            ),
        )
        .expect("write ext");
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &cert,
                "-days",
                "1",
                "-extfile",
                &ext,
            ],
        );
        Issued {
            cert: self.dir.join(cert),
            key: self.dir.join(key),
        }
    }

    /// A reqwest client that trusts this CA alone.
    pub fn client(&self) -> reqwest::Client {
        self.client_builder().build().expect("client")
    }

    /// A reqwest client builder that trusts this CA alone.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let pem = std::fs::read(&self.cert).expect("read CA");
        let certificate = reqwest::Certificate::from_pem(&pem).expect("CA pem");
        reqwest::Client::builder().tls_certs_only([certificate])
    }
}
