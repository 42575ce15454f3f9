//! The node's TLS from its flags (`--tls-cert`, `--tls-key`, `--tls-ca`): what its listener
//! serves, how its own components reach that listener over loopback, how it reaches other
//! nodes, and how executors reach it.

use std::sync::Arc;

use anyhow::Context;

use agora_tls::tokio_rustls::rustls::ServerConfig;

use crate::cli::TlsArgs;

/// TLS as the node uses it; all `None` without `--tls-cert`.
#[derive(Clone, Default)]
pub struct NodeTls {
    /// What the listener serves: https, asking clients for certificates when agents must
    /// present one.
    pub server: Option<Arc<ServerConfig>>,
    /// How the process's own components (built-in frameworks, UI, discovery, `agora up`'s
    /// agent) reach its listener: trusting exactly its certificate, whatever address they
    /// dial, and presenting it.
    pub local: Option<agora_client::Tls>,
    /// How the node reaches other nodes (an agent its master): checked against `--tls-ca`,
    /// presenting its certificate when it has one.
    pub remote: Option<agora_client::Tls>,
    /// How executors reach this agent.
    pub executors: Option<agora_agent::ExecutorTls>,
    /// Plain HTTP is served on the same port too (`--tls-support-downgrade`).
    pub accept_plain: bool,
}

impl NodeTls {
    /// Whether the listener serves https.
    pub fn serves(&self) -> bool {
        self.server.is_some()
    }

    /// What the listener serves.
    pub fn listener(&self) -> Option<agora_http::ListenerTls> {
        self.server.clone().map(|config| agora_http::ListenerTls {
            config,
            accept_plain: self.accept_plain,
        })
    }

    /// `http` or `https`, for what the node prints and advertises.
    pub fn scheme(&self) -> &'static str {
        if self.serves() { "https" } else { "http" }
    }
}

/// The node's TLS; `require_agent_cert`: a master's `--tls-require-agent-cert`.
pub fn of(args: &TlsArgs, require_agent_cert: bool) -> anyhow::Result<NodeTls> {
    let identity = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
        _ => None,
    };
    if require_agent_cert && (identity.is_none() || args.tls_ca.is_none()) {
        anyhow::bail!("--tls-require-agent-cert needs --tls-cert, --tls-key and --tls-ca");
    }
    let remote = match &args.tls_ca {
        Some(ca) => Some(agora_client::Tls::new(
            agora_tls::client(ca, identity).context("invalid --tls-ca")?,
        )),
        None => None,
    };
    let Some((cert, key)) = identity else {
        return Ok(NodeTls {
            remote,
            ..NodeTls::default()
        });
    };
    let client_ca = if require_agent_cert {
        args.tls_ca.as_deref()
    } else {
        None
    };
    let server =
        agora_tls::server(cert, key, client_ca).context("invalid --tls-cert or --tls-key")?;
    let local = agora_tls::pinned(cert, Some((cert, key))).context("invalid --tls-cert")?;
    Ok(NodeTls {
        server: Some(server),
        local: Some(agora_client::Tls::new(local)),
        remote,
        executors: Some(agora_agent::ExecutorTls {
            cert_pem: agora_tls::certificate_pem(cert).context("invalid --tls-cert")?,
            ca_file: args.tls_ca.clone(),
        }),
        accept_plain: args.tls_support_downgrade,
    })
}
