//! What can go wrong fetching a task's URIs, in the words its failed task shows.

use std::path::PathBuf;
use std::sync::Arc;

use hyper::StatusCode;

/// Why the URIs of an executor could not all be put into its sandbox.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error(transparent)]
    Uri(#[from] UriError),
    #[error("Failed to fetch '{uri}': {reason}")]
    Failed { uri: String, reason: FetchFailure },
    #[error("cannot give the fetched files to the task's user: {0}")]
    GiveToUser(#[source] std::io::Error),
}

/// What a `CommandInfo.uris` entry asks for that cannot be done.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UriError {
    #[error("a URI needs a 'value': {0}")]
    NoValue(String),
    #[error("unsupported scheme '{0}' (http, https and file are)")]
    UnsupportedScheme(String),
    #[error("a relative path needs a scheme (http://, https:// or file://)")]
    NoScheme,
    #[error("'{0}' names no file; give an output_file")]
    NamesNoFile(String),
    #[error("output file '{0}' is not a path inside the sandbox")]
    OutsideSandbox(String),
}

/// Why one URI could not be fetched.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchFailure {
    #[error(transparent)]
    Uri(#[from] UriError),
    #[error(transparent)]
    Download(#[from] DownloadError),
    #[error("cannot make it executable: {0}")]
    Executable(#[source] std::io::Error),
    #[error("cannot create the fetcher cache {}: {source}", dir.display())]
    CacheDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot fill the cache: {0}")]
    FillCache(#[source] std::io::Error),
    #[error("cannot create {}: {source}", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot run {tool} to extract it: {source}")]
    RunExtractor {
        tool: &'static str,
        source: std::io::Error,
    },
    #[error("{tool} could not extract it ({status}): {stderr}")]
    Extract {
        tool: &'static str,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("cannot open the sandbox: {0}")]
    Sandbox(#[source] std::io::Error),
    #[error("'{}' leads out of the sandbox: {source}", path.display())]
    LeadsOut {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("'{}' names no file", .0.display())]
    NoFile(PathBuf),
    #[error("'{}' is a link in the sandbox", .0.display())]
    Link(PathBuf),
    #[error("cannot give {} to the task's user: {source}", dir.display())]
    GiveDir {
        dir: PathBuf,
        source: nix::errno::Errno,
    },
    #[error("cannot copy {}: {source}", path.display())]
    Copy {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot copy {}: {stderr}", path.display())]
    CopyRefused { path: PathBuf, stderr: String },
    #[error("larger than the agent's --fetcher-max-size of {0} bytes")]
    TooLarge(u64),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("the fetch was cut short: {0}")]
    Interrupted(#[from] tokio::task::JoinError),
}

/// Why an http or https URI could not be downloaded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DownloadError {
    #[error("cannot load the machine's trusted roots: {0}")]
    Roots(#[source] Arc<agora_tls::TlsError>),
    #[error("not a URL: {0}")]
    NotUrl(#[source] hyper::http::uri::InvalidUri),
    #[error("refused a redirect from https to {0}: not over TLS")]
    InsecureRedirect(hyper::Uri),
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    #[error("bad redirect {location}: {source}")]
    BadRedirect {
        location: String,
        source: hyper::http::uri::InvalidUri,
    },
    #[error("unsupported scheme {0:?}")]
    UnsupportedScheme(Option<String>),
    #[error("the URL has no host")]
    NoHost,
    #[error("connecting to {0} timed out")]
    ConnectTimeout(String),
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("bad host name: {0}")]
    HostName(#[source] tokio_rustls::rustls::pki_types::InvalidDnsNameError),
    #[error("TLS handshake with {0} timed out")]
    TlsTimeout(String),
    #[error("TLS handshake with {address} failed: {source}")]
    Tls {
        address: String,
        source: std::io::Error,
    },
    #[error("the HTTP handshake timed out")]
    HandshakeTimeout,
    #[error(transparent)]
    Http(#[from] hyper::Error),
    #[error(transparent)]
    Request(#[from] hyper::http::Error),
    #[error("no answer in {0} s")]
    NoAnswer(u64),
    #[error("HTTP {0} without a Location")]
    NoLocation(StatusCode),
    #[error("HTTP {0}")]
    Status(StatusCode),
    #[error("larger than the agent's --fetcher-max-size of {0} bytes")]
    TooLarge(u64),
    #[error("cannot create {}: {source}", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no data for {0} s")]
    NoData(u64),
    #[error("the transfer broke off: {0}")]
    BrokeOff(#[source] hyper::Error),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}
