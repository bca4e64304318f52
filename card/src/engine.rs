//! The card's nonce engine: a thread that keeps the nonce and key-pair pools (SM2, P-256)
//! full, computing the refill jobs the link threads draw for it in parallel with requests.
//!
//! Its queues are behind their own short lock ([`Exchange`]), so that the engine never waits
//! for the card's: whoever holds the card (a link thread, before each request) hands in what
//! the engine computed and draws new jobs (the scalars come from the card's DRBG). An earlier
//! engine took the card's lock itself; under a stream of long requests (`SignBatch`) it spent
//! a third of its time waiting for one to end, and the standard mutex, not being fair, could
//! keep it out for as long as the stream lasted.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gmhsm_firmware::Hsm;
use gmhsm_firmware::hsm::{RefillDone, RefillJob};
use gmhsm_platform::Platform;

use crate::Card;

/// The longest the nonce engine sleeps without being woken (it is woken when a link thread
/// drew jobs for it; this bound only covers changes no request announces, and hands in what
/// the engine computed after the last request of a burst).
const REFILL_IDLE: Duration = Duration::from_millis(100);

/// Refill jobs (each at most one batch per pool) drawn ahead for the nonce engine.
const JOBS_AHEAD: usize = 4;

#[derive(Default)]
pub(crate) struct Exchange {
    /// Drawn, to be computed by the engine.
    todo: VecDeque<RefillJob>,
    /// Computed, to be handed in. Batches drawn before a zeroize or tamper response are
    /// dropped (zeroized) when handed in: the card checks their epoch.
    done: Vec<RefillDone>,
}

impl<P: Platform> Card<P> {
    /// With the card held: hand in the engine's finished batches and, when a pool has room,
    /// draw jobs for it (waking it).
    pub(crate) fn service_engine(&self, hsm: &mut Hsm<P>) {
        let Ok(mut ex) = self.exchange.lock() else { return };
        for done in ex.done.drain(..) {
            hsm.accept_refill(done);
        }
        let before = ex.todo.len();
        while ex.todo.len() < JOBS_AHEAD {
            // `None` when no pool has room (or the card is not operational).
            let Some(job) = hsm.refill_job() else { break };
            ex.todo.push_back(job);
        }
        if ex.todo.len() > before {
            self.wake.notify_one();
        }
    }
}

/// The nonce engine: compute the jobs the link threads drew, until a lock is poisoned (a
/// panic inside the card) or `stop` is set. It holds only the exchange's lock, and that
/// briefly; with nothing drawn for [`REFILL_IDLE`] (no requests) it takes the card itself to
/// hand in and draw, which also fills the pools after boot.
pub(crate) fn refill_loop<P: Platform>(card: &Card<P>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let job = {
            let Ok(mut ex) = card.exchange.lock() else { return };
            loop {
                if let Some(job) = ex.todo.pop_front() {
                    break Some(job);
                }
                let Ok((guard, wait)) = card.wake.wait_timeout(ex, REFILL_IDLE) else { return };
                ex = guard;
                if wait.timed_out() && ex.todo.is_empty() {
                    break None;
                }
            }
        };
        match job {
            Some(job) => {
                let done = job.compute();
                let Ok(mut ex) = card.exchange.lock() else { return };
                ex.done.push(done);
                // Nothing else drawn: hand in now if the card is free (after boot, or between
                // requests); if a request holds it, its link thread hands in before the next.
                if ex.todo.is_empty() {
                    drop(ex);
                    if let Ok(mut hsm) = card.hsm.try_lock() {
                        card.service_engine(&mut hsm);
                    }
                }
            }
            None => {
                let Ok(mut hsm) = card.hsm.lock() else { return };
                card.service_engine(&mut hsm);
            }
        }
    }
}
