//! The service-port proxy: a listener per service port on the bind address, each accepted
//! connection forwarded to a backend of the port's current pool. Route changes swap pools;
//! established connections keep their backend until either side closes. A backend that
//! refuses (or does not answer within the connect timeout) is retried on the next one.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::pool::{Backend, Pool};
use crate::routes::{Balance, Routes};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Counters served as metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub connections: AtomicU64,
    pub retries: AtomicU64,
    /// Connections closed because no backend could be reached.
    pub failures: AtomicU64,
    pub route_updates: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The pools by service port, and the listeners serving them.
pub struct Proxy {
    bind: IpAddr,
    default_balance: Balance,
    epoch: Instant,
    pools: RwLock<Arc<HashMap<u16, Arc<Pool>>>>,
    /// Virtual host → the service port whose pool serves it.
    vhosts: RwLock<Arc<HashMap<String, u16>>>,
    listeners: Mutex<HashMap<u16, CancellationToken>>,
    /// Ports that could not be bound, with the reason.
    bind_errors: Mutex<BTreeMap<u16, String>>,
    /// Backends by address, reused across pools so their connection counts carry over.
    backends: Mutex<HashMap<SocketAddr, Arc<Backend>>>,
    pub counters: Counters,
    shutdown: CancellationToken,
    /// The runtime connections are served on (the caller's if `None`).
    workers: Option<tokio::runtime::Handle>,
}

/// Starts the runtime connections are served on, on threads of its own that live until
/// `shutdown`: one thread runs a single-threaded runtime (HAProxy's model: a connection never
/// changes threads); more run a work-stealing runtime with that many workers.
pub fn start_workers(
    threads: usize,
    shutdown: &CancellationToken,
) -> std::io::Result<tokio::runtime::Handle> {
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("agora-proxy")
            .enable_all()
            .build()?
    };
    let handle = runtime.handle().clone();
    let shutdown = shutdown.clone();
    std::thread::Builder::new()
        .name("agora-proxy".into())
        .spawn(move || runtime.block_on(shutdown.cancelled()))?;
    Ok(handle)
}

impl Proxy {
    /// A proxy serving on `workers` (see [`start_workers`]).
    pub fn new(
        bind: IpAddr,
        default_balance: Balance,
        workers: Option<tokio::runtime::Handle>,
        shutdown: CancellationToken,
    ) -> Arc<Proxy> {
        Arc::new(Proxy {
            workers,
            bind,
            default_balance,
            epoch: Instant::now(),
            pools: RwLock::new(Arc::new(HashMap::new())),
            vhosts: RwLock::new(Arc::new(HashMap::new())),
            listeners: Mutex::new(HashMap::new()),
            bind_errors: Mutex::new(BTreeMap::new()),
            backends: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            shutdown,
        })
    }

    pub fn pool(&self, port: u16) -> Option<Arc<Pool>> {
        self.pools
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&port)
            .cloned()
    }

    /// The pool serving a virtual host (already normalized).
    pub fn vhost_pool(&self, host: &str) -> Option<Arc<Pool>> {
        let port = *self
            .vhosts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(host)?;
        self.pool(port)
    }

    pub fn counted_retry(&self) {
        self.counters.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub fn counted_failure(&self) {
        self.counters.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Installs new routes (hosts already resolved by `addresses`) and brings the listeners
    /// in line: new ports bound, ports no longer routed closed, failed binds tried again.
    pub async fn update(self: &Arc<Proxy>, routes: &Routes, addresses: &HashMap<String, IpAddr>) {
        let pools: HashMap<u16, Arc<Pool>> = {
            let mut known = lock(&self.backends);
            let mut used = HashMap::new();
            let pools = routes
                .ports
                .iter()
                .map(|(&port, route)| {
                    let backends = route
                        .backends
                        .iter()
                        .filter_map(|e| {
                            let addr = SocketAddr::new(*addresses.get(&e.host)?, e.port);
                            let backend = known
                                .get(&addr)
                                .cloned()
                                .unwrap_or_else(|| Arc::new(Backend::new(addr, self.epoch)));
                            used.insert(addr, backend.clone());
                            Some(backend)
                        })
                        .collect();
                    let balance = route.balance.unwrap_or(self.default_balance);
                    (
                        port,
                        Arc::new(Pool::new(route.app_id.clone(), backends, balance)),
                    )
                })
                .collect();
            *known = used;
            pools
        };
        let ports: Vec<u16> = pools.keys().copied().collect();
        *self.pools.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(pools);
        let vhosts: HashMap<String, u16> = routes
            .vhosts
            .iter()
            .map(|(host, port)| (host.clone(), *port))
            .collect();
        *self.vhosts.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(vhosts);
        self.counters.route_updates.fetch_add(1, Ordering::Relaxed);
        self.reconcile_listeners(&ports).await;
    }

    async fn reconcile_listeners(self: &Arc<Proxy>, ports: &[u16]) {
        let stale: Vec<u16> = lock(&self.listeners)
            .keys()
            .filter(|p| !ports.contains(p))
            .copied()
            .collect();
        for port in stale {
            if let Some(token) = lock(&self.listeners).remove(&port) {
                token.cancel();
                tracing::info!(port, "service port no longer routed; listener closed");
            }
        }
        lock(&self.bind_errors).retain(|p, _| ports.contains(p));
        for &port in ports {
            if lock(&self.listeners).contains_key(&port) {
                continue;
            }
            let address = SocketAddr::new(self.bind, port);
            match self.listen(address) {
                Ok((listener, worker)) => {
                    let token = self.shutdown.child_token();
                    lock(&self.listeners).insert(port, token.clone());
                    lock(&self.bind_errors).remove(&port);
                    tracing::info!(%address, "service port listening");
                    worker.spawn(accept_loop(self.clone(), port, listener, token));
                }
                Err(error) => {
                    let message = format!("cannot listen on {address}: {error}");
                    let mut errors = lock(&self.bind_errors);
                    if errors.get(&port) != Some(&message) {
                        tracing::warn!(port, %error, "service port cannot be bound");
                    }
                    errors.insert(port, message);
                }
            }
        }
    }

    /// A listener on `address`, registered with the serving runtime.
    fn listen(
        &self,
        address: SocketAddr,
    ) -> std::io::Result<(TcpListener, tokio::runtime::Handle)> {
        let worker = match &self.workers {
            Some(worker) => worker.clone(),
            None => tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?,
        };
        let _context = worker.enter();
        let socket = match address {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        // As tokio's TcpListener::bind: a restarted node takes its ports back at once.
        socket.set_reuseaddr(true)?;
        socket.bind(address)?;
        Ok((socket.listen(1024)?, worker))
    }

    /// Tries the ports that could not be bound again (they may have been freed).
    pub async fn retry_binds(self: &Arc<Proxy>) {
        let ports: Vec<u16> = self
            .pools
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect();
        if !lock(&self.bind_errors).is_empty() {
            self.reconcile_listeners(&ports).await;
        }
    }

    pub fn bind_errors(&self) -> BTreeMap<u16, String> {
        lock(&self.bind_errors).clone()
    }

    pub fn listening(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = lock(&self.listeners).keys().copied().collect();
        ports.sort_unstable();
        ports
    }

    /// Connects to a backend of `port`'s pool, trying each backend at most once.
    pub async fn connect(&self, port: u16) -> Option<(TcpStream, crate::pool::Held)> {
        let pool = self.pool(port)?;
        let mut tried = Vec::new();
        while let Some(backend) = pool.pick(&tried, Instant::now()) {
            tried.push(backend.addr);
            let held = backend.hold();
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(backend.addr)).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    backend.connected();
                    return Some((stream, held));
                }
                Ok(Err(error)) => {
                    tracing::debug!(backend = %backend.addr, %error, "backend refused; trying another");
                }
                Err(_) => {
                    tracing::debug!(backend = %backend.addr, "backend did not answer; trying another");
                }
            }
            backend.refused(Instant::now());
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
        }
        tracing::debug!(port, app = %pool.app_id, "no backend of the app is reachable");
        None
    }
}

async fn accept_loop(
    proxy: Arc<Proxy>,
    port: u16,
    listener: TcpListener,
    token: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = token.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((client, _)) => {
                proxy.counters.connections.fetch_add(1, Ordering::Relaxed);
                let _ = client.set_nodelay(true);
                let proxy = proxy.clone();
                tokio::spawn(async move { forward(&proxy, port, client).await });
            }
            Err(error) => {
                // Out of descriptors and the like: pause rather than spin.
                tracing::warn!(port, %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn forward(proxy: &Proxy, port: u16, mut client: TcpStream) {
    let Some((mut backend, _held)) = proxy.connect(port).await else {
        proxy.counters.failures.fetch_add(1, Ordering::Relaxed);
        return;
    };
    // Ends when both directions have closed (half-closes are passed on) or either fails.
    let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
}

/// Resolves each backend host once per update, reusing earlier answers for hosts that no
/// longer resolve (a DNS hiccup must not empty a pool).
#[derive(Default)]
pub struct HostCache {
    known: HashMap<String, IpAddr>,
}

impl HostCache {
    pub async fn resolve(&mut self, routes: &Routes) -> HashMap<String, IpAddr> {
        let hosts: Vec<&str> = routes
            .ports
            .values()
            .flat_map(|r| r.backends.iter().map(|e| e.host.as_str()))
            .collect();
        self.resolve_hosts(hosts.into_iter()).await
    }

    pub async fn resolve_hosts<'a>(
        &mut self,
        hosts: impl Iterator<Item = &'a str>,
    ) -> HashMap<String, IpAddr> {
        let mut hosts: Vec<&str> = hosts.collect();
        hosts.sort_unstable();
        hosts.dedup();
        let mut resolved = HashMap::new();
        for host in hosts {
            if let Some(ip) = self.known.get(host) {
                resolved.insert(host.to_owned(), *ip);
                continue;
            }
            match crate::resolve::lookup(host).await {
                Ok(Some(ip)) => {
                    resolved.insert(host.to_owned(), ip);
                }
                Ok(None) => tracing::warn!(host, "backend host has no address"),
                Err(error) => tracing::warn!(host, %error, "backend host does not resolve"),
            }
        }
        self.known = resolved.clone();
        resolved
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::Cluster;
    use crate::routes::Groups;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A backend that answers "hi" to every connection.
    async fn greeter() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let _ = stream.write_all(b"hi").await;
            }
        });
        port
    }

    /// A port nothing listens on.
    fn refusing_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    }

    /// A round-robin proxy on 127.0.0.1 serving the routes of an `/apps?embed=apps.tasks`
    /// document; cancel the token to stop it.
    pub(crate) async fn proxy_for(doc: serde_json::Value) -> (Arc<Proxy>, CancellationToken) {
        let mut cluster = Cluster::default();
        cluster
            .load_snapshot(doc.to_string().as_bytes())
            .expect("snapshot");
        let routes = Routes::of(&cluster, &Groups::default());
        let shutdown = CancellationToken::new();
        let proxy = Proxy::new(
            IpAddr::from([127, 0, 0, 1]),
            Balance::RoundRobin,
            Some(start_workers(2, &shutdown).expect("workers")),
            shutdown.clone(),
        );
        let addresses = HostCache::default().resolve(&routes).await;
        proxy.update(&routes, &addresses).await;
        (proxy, shutdown)
    }

    #[tokio::test]
    async fn refused_connections_are_retried_on_the_next_backend() {
        let live = greeter().await;
        let dead = refusing_port();
        let service_port = refusing_port();
        let doc = serde_json::json!({"apps": [{"id": "/app", "portDefinitions": [{"port": service_port}],
            "tasks": [
                {"id": "a", "host": "127.0.0.1", "ports": [dead], "state": "TASK_RUNNING"},
                {"id": "b", "host": "127.0.0.1", "ports": [live], "state": "TASK_RUNNING"}]}]});
        let (proxy, shutdown) = proxy_for(doc).await;
        assert_eq!(proxy.listening(), vec![service_port]);
        for _ in 0..6 {
            let mut client = TcpStream::connect(("127.0.0.1", service_port))
                .await
                .expect("connect");
            let mut answer = String::new();
            client.read_to_string(&mut answer).await.expect("read");
            assert_eq!(answer, "hi");
        }
        // The dead backend was tried, then passed over while it cools down.
        let retries = proxy.counters.retries.load(Ordering::Relaxed);
        assert!((1..6).contains(&retries), "{retries} retries");
        assert_eq!(proxy.counters.failures.load(Ordering::Relaxed), 0);
        shutdown.cancel();
    }
}
