//! Bounds shared by all connections: connections per client certificate, the per-application
//! request rate (token buckets, charged each request's cost from
//! [`gmhsm_proto::Request::cost`]) and the applications admitted ([`Admission`]).
//!
//! Time comes from the injected [`Clock`], so the rate limiter is deterministic under test.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use gmhsm_proto::Principal;

use crate::applications::Admission;
pub use crate::applications::Fingerprint;
use crate::config::{Clock, RateLimit};

/// The fingerprint of an application principal; `None` for local tools.
pub fn fingerprint(p: &Principal) -> Option<&Fingerprint> {
    match p {
        Principal::Application { cert_sha256 } => Some(cert_sha256),
        Principal::Local => None,
    }
}

/// The first 4 bytes of a principal's fingerprint in hex, for logs; `local` for local tools.
pub fn short(p: Option<&Principal>) -> String {
    match p {
        None => "-".into(),
        Some(Principal::Local) => "local".into(),
        Some(Principal::Application { cert_sha256 }) => cert_sha256[..4].iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// Why an authenticated connection may not go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The certificate is not admitted (see [`Admission`]).
    NotListed,
    /// The certificate already has `max_connections_per_client` connections.
    TooManyConnections,
}

/// One token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The shared bounds.
pub struct Bounds {
    max_per_client: usize,
    per_client: HashMap<Fingerprint, usize>,
    rate: Option<RateLimit>,
    buckets: HashMap<Fingerprint, Bucket>,
    admission: Admission,
    clock: Arc<dyn Clock>,
}

impl Bounds {
    pub fn new(max_per_client: usize, rate: Option<RateLimit>, clock: Arc<dyn Clock>) -> Self {
        Bounds {
            max_per_client,
            per_client: HashMap::new(),
            rate,
            buckets: HashMap::new(),
            admission: Admission::nobody(),
            clock,
        }
    }

    /// The applications admitted (replaced at bind, read again on reload).
    pub fn admission(&mut self) -> &mut Admission {
        &mut self.admission
    }

    /// Admit the applications of `admission` from now on.
    pub fn set_admission(&mut self, admission: Admission) {
        self.admission = admission;
    }

    /// A connection authenticated as `p`: count it, or say why it must go. Each `Ok` must be
    /// matched by one [`Bounds::leave`].
    pub fn enter(&mut self, p: &Principal) -> Result<(), Refusal> {
        let Some(fp) = fingerprint(p) else {
            return Ok(());
        };
        if !self.admission.admits(fp) {
            return Err(Refusal::NotListed);
        }
        let n = self.per_client.entry(*fp).or_insert(0);
        if *n >= self.max_per_client {
            return Err(Refusal::TooManyConnections);
        }
        *n += 1;
        Ok(())
    }

    /// A connection counted by [`Bounds::enter`] closed.
    pub fn leave(&mut self, p: &Principal) {
        let Some(fp) = fingerprint(p) else { return };
        if let Some(n) = self.per_client.get_mut(fp) {
            *n -= 1;
            if *n == 0 {
                self.per_client.remove(fp);
            }
        }
    }

    /// Take `n` tokens from `p`'s bucket for a request of that cost (`Request::cost`, the
    /// card's cost table: 0 for a `Ping`, 1 for a signature, thousands for an RSA-4096 key);
    /// `false`, taking none, when fewer are left (answer `Status::Busy`). A request larger
    /// than the burst passes on a full bucket and leaves it in debt for the rest: the rate
    /// holds whatever the burst. A free request always passes.
    pub fn take_tokens(&mut self, p: &Principal, n: u32) -> bool {
        let (Some(rate), Some(fp)) = (self.rate, fingerprint(p)) else {
            return true;
        };
        if n == 0 {
            return true;
        }
        let now = self.clock.now();
        let burst = f64::from(rate.burst);
        let cost = f64::from(n);
        let need = cost.min(burst);
        let b = self.buckets.entry(*fp).or_insert(Bucket { tokens: burst, at: now });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate.per_second).min(burst);
        b.at = now;
        if b.tokens >= need {
            b.tokens -= cost;
            true
        } else {
            false
        }
    }

    /// Forget full buckets of applications without connections, so the map stays bounded by
    /// the applications that are connected or recently were.
    pub fn sweep(&mut self) {
        let Some(rate) = self.rate else { return };
        let now = self.clock.now();
        let per_client = &self.per_client;
        self.buckets.retain(|fp, b| {
            let refilled = b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate.per_second;
            per_client.contains_key(fp) || refilled < f64::from(rate.burst)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::applications::Applications;
    use std::sync::Mutex;
    use std::time::Duration;

    struct Manual(Mutex<Instant>);
    impl Clock for Manual {
        fn now(&self) -> Instant {
            *self.0.lock().expect("lock")
        }
    }

    fn app(n: u8) -> Principal {
        Principal::Application { cert_sha256: [n; 32] }
    }

    #[test]
    fn bucket_empties_and_refills() {
        let clock = Arc::new(Manual(Mutex::new(Instant::now())));
        let rate = RateLimit { per_second: 2.0, burst: 3 };
        let mut b = Bounds::new(1, Some(rate), clock.clone());
        assert!((0..3).all(|_| b.take_tokens(&app(1), 1)));
        assert!(!b.take_tokens(&app(1), 1));
        assert!(b.take_tokens(&app(2), 1), "another application is unaffected");
        assert!(b.take_tokens(&Principal::Local, 1), "local tools are not limited");
        *clock.0.lock().expect("lock") += Duration::from_millis(500);
        assert!(b.take_tokens(&app(1), 1));
        assert!(!b.take_tokens(&app(1), 1));
        b.sweep();
        *clock.0.lock().expect("lock") += Duration::from_secs(10);
        b.sweep();
        assert!(b.buckets.is_empty());
    }

    /// A batch request is charged one token per operation, at most the whole bucket.
    #[test]
    fn batches_take_a_token_per_operation() {
        let clock = Arc::new(Manual(Mutex::new(Instant::now())));
        let mut b = Bounds::new(1, Some(RateLimit { per_second: 10.0, burst: 100 }), clock.clone());
        assert!(b.take_tokens(&app(1), 64));
        assert!(!b.take_tokens(&app(1), 64), "36 left");
        assert!(b.take_tokens(&app(1), 36));
        assert!(!b.take_tokens(&app(1), 1));
        *clock.0.lock().expect("lock") += Duration::from_secs(10);
        assert!(b.take_tokens(&app(1), 256), "a batch above the burst passes on a full bucket");
        // ... and leaves 156 tokens of debt: 15.7 s at 10/s before one more request passes.
        *clock.0.lock().expect("lock") += Duration::from_secs(15);
        assert!(!b.take_tokens(&app(1), 1), "still in debt");
        *clock.0.lock().expect("lock") += Duration::from_secs(1);
        assert!(b.take_tokens(&app(1), 1));
        // With a burst of 1, batches cannot beat the rate either.
        let mut b = Bounds::new(1, Some(RateLimit { per_second: 1.0, burst: 1 }), clock.clone());
        assert!(b.take_tokens(&app(3), 256));
        *clock.0.lock().expect("lock") += Duration::from_secs(250);
        assert!(!b.take_tokens(&app(3), 1), "256 operations cost 256 s at 1/s");
    }

    #[test]
    fn connections_per_client_and_allow_list() {
        let mut b = Bounds::new(1, None, Arc::new(crate::config::SystemClock));
        assert_eq!(b.enter(&app(1)), Err(Refusal::NotListed), "nobody is admitted by default");
        b.set_admission(Admission::load(Applications::AnyCertificate).unwrap());
        assert_eq!(b.enter(&app(1)), Ok(()));
        assert_eq!(b.enter(&app(1)), Err(Refusal::TooManyConnections));
        assert_eq!(b.enter(&app(2)), Ok(()));
        b.leave(&app(1));
        assert_eq!(b.enter(&app(1)), Ok(()));
        b.set_admission(Admission::load(Applications::Nobody).unwrap());
        assert_eq!(b.enter(&app(4)), Err(Refusal::NotListed));
        b.leave(&app(2));
        assert_eq!(b.enter(&Principal::Local), Ok(()), "local tools are not applications");
    }
}
