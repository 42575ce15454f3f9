//! Who may call this node, from its flags: the credentials it knows, the key of its bearer
//! tokens, the realms that require a caller; and the identities of the components that call
//! their own process's APIs (the built-in frameworks, the UI's background work, discovery).

use std::path::Path;

use anyhow::Context;

use agora_client::{Access, Auth};
use agora_http::auth::acl::Acls;
use agora_http::auth::{Authenticator, Credential, Credentials, Required, TokenKey};

use crate::cli::{AuthArgs, MasterAuthArgs};

/// How long the tokens of the process's own components are good: as long as it runs.
const INTERNAL_TOKEN_SECS: u64 = 10 * 365 * 24 * 3600;

/// Who may call the node, and what each may do.
pub struct Security {
    pub auth: std::sync::Arc<Authenticator>,
    pub acls: std::sync::Arc<Acls>,
    /// What Docker tasks may ask of their hosts (`--docker-allow`).
    pub docker: agora_api::docker_policy::DockerPolicy,
    /// Where tasks' secrets are (`--secrets-dir`).
    pub secrets: Option<std::sync::Arc<agora_secrets::SecretsDir>>,
    /// TLS on the listener and to other nodes (`--tls-*`).
    pub tls: crate::tls::NodeTls,
    /// Agents must present a certificate signed by `--tls-ca` (a master's
    /// `--tls-require-agent-cert`).
    pub require_agent_cert: bool,
}

/// The node's security from its flags (see [`authenticator`]).
pub fn of(
    args: &AuthArgs,
    tls: &crate::cli::TlsArgs,
    master: Option<&MasterAuthArgs>,
    key_dir: Option<&Path>,
) -> anyhow::Result<Security> {
    let require_agent_cert = master.is_some_and(|m| m.tls_require_agent_cert);
    Ok(Security {
        tls: crate::tls::of(tls, require_agent_cert)?,
        require_agent_cert,
        auth: std::sync::Arc::new(authenticator(args, master, key_dir)?),
        acls: acls(args)?,
        docker: args.docker_allow.clone(),
        secrets: match &args.secrets_dir {
            Some(path) => Some(std::sync::Arc::new(agora_secrets::SecretsDir::open(path)?)),
            None => None,
        },
    })
}

/// The node's authenticator. A master (`key_dir`: its data dir) signs tokens with
/// `--jwt-secret-key`, or with a key it makes and keeps in its data dir; an agent verifies
/// tokens only with `--jwt-secret-key`.
pub fn authenticator(
    auth: &AuthArgs,
    master: Option<&MasterAuthArgs>,
    key_dir: Option<&Path>,
) -> anyhow::Result<Authenticator> {
    let credentials = match &auth.credentials {
        Some(path) => Credentials::load(path).context("invalid --credentials")?,
        None => Credentials::default(),
    };
    let key = match (&auth.jwt_secret_key, key_dir) {
        (Some(path), _) => Some(read_key(path)?),
        (None, Some(dir)) => Some(kept_key(dir)?),
        (None, None) => None,
    };
    let required = Required {
        frameworks: master.is_some_and(|m| m.authenticate_frameworks),
        agents: master.is_some_and(|m| m.authenticate_agents),
        readwrite: auth.authenticate_http_readwrite,
        readonly: auth.authenticate_http_readonly,
    };
    if required.any() && credentials.is_empty() && key.is_none() {
        anyhow::bail!(
            "authentication is required, but there is no one to authenticate: give \
             --credentials (and --jwt-secret-key for bearer tokens)"
        );
    }
    Ok(Authenticator {
        credentials,
        key: key.map(|k| TokenKey::new(&k)),
        required,
    })
}

fn read_key(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read --jwt-secret-key {}", path.display()))?;
    let trimmed = bytes.trim_ascii_end().to_vec();
    if trimmed.len() < 16 {
        anyhow::bail!(
            "--jwt-secret-key {} is shorter than 16 bytes: too easy to guess",
            path.display()
        );
    }
    Ok(trimmed)
}

/// The master's own token key, made once (32 random bytes) and kept in its data dir (0600).
fn kept_key(dir: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("jwt.key");
    if let Ok(bytes) = std::fs::read(&path) {
        return Ok(bytes);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let key: [u8; 32] = rand::random();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(&key)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(key.to_vec())
}

/// The node's ACLs (`--acls`); without: everything is allowed, as Mesos without ACLs.
pub fn acls(auth: &AuthArgs) -> anyhow::Result<std::sync::Arc<Acls>> {
    match &auth.acls {
        Some(path) => Ok(std::sync::Arc::new(
            Acls::load(path).context("invalid --acls")?,
        )),
        None => Ok(std::sync::Arc::default()),
    }
}

/// How a component of this process reaches its APIs: as `principal`, with a token the
/// process signs itself (none when it cannot sign).
pub fn internal_access(auth: &Authenticator, principal: &str) -> Access {
    Access::new(auth.sign(principal, INTERNAL_TOKEN_SECS).map(Auth::Bearer))
}

/// A node that is an agent to its master (`agora agent`, `agora hollow-agents`): its own
/// security, and how it reaches the master — its `--credential`, over TLS as `--tls-ca` says.
pub fn agent_node(
    auth: &AuthArgs,
    tls: &crate::cli::TlsArgs,
    credential: Option<&Path>,
) -> anyhow::Result<(Security, Access)> {
    let security = of(auth, tls, None, None)?;
    let access = agent_access(credential)?.with_tls(security.tls.remote.clone());
    Ok((security, access))
}

/// How an agent reaches its master: with its `--credential`.
fn agent_access(credential: Option<&Path>) -> anyhow::Result<Access> {
    let Some(path) = credential else {
        return Ok(Access::default());
    };
    let credential = Credential::load(path).context("invalid --credential")?;
    Ok(Access::new(Some(Auth::Basic {
        principal: credential.principal,
        secret: credential.secret,
    })))
}

/// Says, where an operator looks first, what a master leaves open: callers nobody asks who
/// they are, or agents nobody checks (whoever registers as one is then trusted with callers'
/// credentials, as the web UI and the CLI send them to the agents whose tasks they look into).
pub fn warn_of_openings(role: &str, security: &Security, listening: &str) {
    let required = &security.auth.required;
    warn_if_open(role, required, listening);
    if (required.readwrite || required.readonly) && !required.agents && !security.require_agent_cert
    {
        warn(format!(
            "WARNING: {role} on {listening} authenticates requests but not agents: any process \
             that reaches it can register as an agent, and the web UI and CLI send the \
             credentials of whoever looks into that agent's tasks to it. Turn on \
             --authenticate-agents (or --tls-require-agent-cert); see docs/security.md."
        ));
    }
}

/// Says, where an operator looks first, that nobody is asked who they are.
pub fn warn_if_open(role: &str, required: &Required, listening: &str) {
    if required.readwrite {
        return;
    }
    warn(format!(
        "WARNING: {role} on {listening} does not authenticate requests that change state: \
         anyone who reaches it can run commands on the cluster. Turn on \
         --authenticate-http-readwrite (with --credentials); see docs/security.md."
    ));
}

/// On the terminal as well as in the log: a warning the operator must not miss.
fn warn(text: String) {
    eprintln!("{text}");
    tracing::warn!("{text}");
}
