//! A service port's backends with their open-connection counts, and the choice of the next
//! backend. Backends are shared between successive pools of the same address, so counts
//! survive route changes and least-connections stays accurate.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::routes::Balance;

/// How long a backend that refused a connection is passed over (unless nothing else is left):
/// short at first — a task just started may not listen yet — doubling with each refusal in a
/// row up to the maximum.
const FIRST_COOL_DOWN: Duration = Duration::from_millis(25);
const MAX_COOL_DOWN: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct Backend {
    pub addr: SocketAddr,
    active: AtomicUsize,
    /// Milliseconds since `epoch` until which the backend is passed over; 0 if never.
    cool_until_ms: AtomicU64,
    /// Refusals since the last connection that worked.
    refusals: std::sync::atomic::AtomicU32,
    epoch: Instant,
}

impl Backend {
    pub fn new(addr: SocketAddr, epoch: Instant) -> Backend {
        Backend {
            addr,
            active: AtomicUsize::new(0),
            cool_until_ms: AtomicU64::new(0),
            refusals: std::sync::atomic::AtomicU32::new(0),
            epoch,
        }
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    fn cooling(&self, now: Instant) -> bool {
        let now_ms = now.duration_since(self.epoch).as_millis() as u64;
        self.cool_until_ms.load(Ordering::Relaxed) > now_ms
    }

    /// A connection to it failed: pass it over for a moment, longer after each refusal.
    pub fn refused(&self, now: Instant) {
        let refusals = self.refusals.fetch_add(1, Ordering::Relaxed).min(16);
        let cool = FIRST_COOL_DOWN
            .saturating_mul(1 << refusals)
            .min(MAX_COOL_DOWN);
        let until = now.duration_since(self.epoch) + cool;
        self.cool_until_ms
            .store(until.as_millis() as u64, Ordering::Relaxed);
    }

    /// A connection to it worked.
    pub fn connected(&self) {
        if self.refusals.load(Ordering::Relaxed) != 0 {
            self.refusals.store(0, Ordering::Relaxed);
            self.cool_until_ms.store(0, Ordering::Relaxed);
        }
    }

    /// Counts a connection for as long as the guard lives.
    pub fn hold(self: &Arc<Backend>) -> Held {
        self.active.fetch_add(1, Ordering::Relaxed);
        Held(self.clone())
    }
}

/// An open connection to a backend.
pub struct Held(Arc<Backend>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
pub struct Pool {
    pub app_id: String,
    pub backends: Vec<Arc<Backend>>,
    pub balance: Balance,
    next: AtomicUsize,
}

impl Pool {
    pub fn new(app_id: String, backends: Vec<Arc<Backend>>, balance: Balance) -> Pool {
        Pool {
            app_id,
            backends,
            balance,
            next: AtomicUsize::new(0),
        }
    }

    /// The backend to try next, skipping those in `tried`: by the pool's balance, among
    /// backends not cooling down if there are any.
    pub fn pick(&self, tried: &[SocketAddr], now: Instant) -> Option<Arc<Backend>> {
        let n = self.backends.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let candidates = || {
            (0..n)
                .map(move |k| &self.backends[(start + k) % n])
                .filter(|b| !tried.contains(&b.addr))
        };
        let choose = |warm: bool| {
            let pool = candidates().filter(|b| warm || !b.cooling(now));
            match self.balance {
                Balance::RoundRobin => pool.into_iter().next(),
                // Ties go to the first in turn, so equal loads still rotate.
                Balance::LeastConn => pool.min_by_key(|b| b.active()),
            }
        };
        choose(false).or_else(|| choose(true)).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pool(n: u16, balance: Balance) -> Pool {
        let epoch = Instant::now();
        let backends = (0..n)
            .map(|i| {
                Arc::new(Backend::new(
                    SocketAddr::from(([127, 0, 0, 1], 31000 + i)),
                    epoch,
                ))
            })
            .collect();
        Pool::new("/app".into(), backends, balance)
    }

    #[test]
    fn round_robin_takes_turns() {
        let pool = pool(3, Balance::RoundRobin);
        let now = Instant::now();
        let ports: Vec<u16> = (0..6)
            .map(|_| pool.pick(&[], now).expect("backend").addr.port())
            .collect();
        assert_eq!(ports, vec![31000, 31001, 31002, 31000, 31001, 31002]);
    }

    #[test]
    fn least_conn_prefers_idle_backends() {
        let pool = pool(3, Balance::LeastConn);
        let now = Instant::now();
        let busy = pool.backends[0].hold();
        let _busier = [pool.backends[1].hold(), pool.backends[1].hold()];
        assert_eq!(pool.pick(&[], now).expect("backend").addr.port(), 31002);
        drop(busy);
        let _c = pool.backends[2].hold();
        assert_eq!(pool.pick(&[], now).expect("backend").addr.port(), 31000);
    }

    #[test]
    fn refused_backends_are_skipped_but_not_lost() {
        let pool = pool(2, Balance::RoundRobin);
        let now = Instant::now();
        pool.backends[0].refused(now);
        for _ in 0..4 {
            assert_eq!(pool.pick(&[], now).expect("backend").addr.port(), 31001);
        }
        let tried = [pool.backends[1].addr];
        // Refused again, it cools down longer.
        pool.backends[0].refused(now);
        assert!(pool.backends[0].cooling(now + FIRST_COOL_DOWN + Duration::from_millis(1)));
        // Only the cooling one is left: try it rather than fail.
        assert_eq!(pool.pick(&tried, now).expect("backend").addr.port(), 31000);
        let later = now + FIRST_COOL_DOWN + Duration::from_millis(1);
        pool.backends[0].connected();
        let ports: Vec<u16> = (0..2)
            .map(|_| pool.pick(&[], later).expect("backend").addr.port())
            .collect();
        assert!(ports.contains(&31000));
    }

    proptest! {
        /// Retrying without repeats visits every backend exactly once, whatever the balance,
        /// the loads and the cool-downs.
        #[test]
        fn retries_visit_every_backend_once(
            n in 1u16..8,
            loads in proptest::collection::vec(0usize..4, 8),
            cooling in proptest::collection::vec(any::<bool>(), 8),
            least in any::<bool>(),
        ) {
            let balance = if least { Balance::LeastConn } else { Balance::RoundRobin };
            let pool = pool(n, balance);
            let now = Instant::now();
            let mut held = Vec::new();
            for (i, backend) in pool.backends.iter().enumerate() {
                for _ in 0..loads[i] { held.push(backend.hold()); }
                if cooling[i] { backend.refused(now); }
            }
            let mut tried = Vec::new();
            while let Some(backend) = pool.pick(&tried, now) {
                prop_assert!(!tried.contains(&backend.addr));
                tried.push(backend.addr);
            }
            prop_assert_eq!(tried.len(), n as usize);
        }
    }
}
