//! Busy polling: after the event loop has done work it keeps polling without sleeping for a
//! short window (`DaemonConfig::busy_poll`) before it blocks, so the event that usually
//! follows soon (the card's answer to a request just relayed, a client's next request) finds
//! the loop awake instead of waking a sleeping CPU, which on a virtual machine costs tens of
//! microseconds. A zero window turns it off; an appliance with nothing to do sleeps once the
//! window after its last event has passed.
//!
//! Between polls the loop yields the CPU (`sched_yield`): without it, on two cores, the
//! spinning loop and the card's spinning link thread held off the client and the card's
//! nonce engine, and unpipelined latency got worse instead of better
//! (`docs/notes-busypoll.md`).

use std::io;
use std::time::{Duration, Instant};

use mio::{Events, Poll};

/// When the loop may poll without sleeping.
#[derive(Debug)]
pub struct BusyPoll {
    window: Duration,
    /// The end of the window opened by the last activity.
    until: Option<Instant>,
}

impl BusyPoll {
    /// `window`: how long to keep polling after the last activity; zero: never.
    pub fn new(window: Duration) -> Self {
        BusyPoll { window, until: None }
    }

    /// The loop did work at `now`: poll without sleeping until `now + window`.
    pub fn active(&mut self, now: Instant) {
        if !self.window.is_zero() {
            self.until = Some(now + self.window);
        }
    }

    /// Until when the next wait may poll without sleeping, if it may at all: the end of the
    /// window, or the loop's own deadline (`now + timeout`) when that comes first.
    pub fn spin_until(&self, now: Instant, timeout: Option<Duration>) -> Option<Instant> {
        let until = self.until.filter(|&u| u > now)?;
        Some(timeout.map_or(until, |t| until.min(now + t))).filter(|&u| u > now)
    }

    /// Wait for events like `poll.poll(events, timeout)`, polling without sleeping first
    /// while the window is open, and yielding the CPU between polls. Returns with `events`
    /// non-empty, or empty once `timeout` has passed.
    pub fn wait(&self, poll: &mut Poll, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        let start = Instant::now();
        let Some(until) = self.spin_until(start, timeout) else {
            return poll.poll(events, timeout);
        };
        loop {
            poll.poll(events, Some(Duration::ZERO))?;
            if !events.is_empty() {
                return Ok(());
            }
            if Instant::now() >= until {
                break;
            }
            // Let a thread that is ready run first: on a machine with few cores it may be the
            // one this loop is waiting for (the card, the client).
            std::thread::yield_now();
        }
        poll.poll(events, timeout.map(|t| t.saturating_sub(start.elapsed())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);

    #[test]
    fn a_zero_window_never_spins() {
        let t = Instant::now();
        let mut b = BusyPoll::new(Duration::ZERO);
        b.active(t);
        assert_eq!(b.spin_until(t, None), None);
        assert_eq!(b.spin_until(t, Some(Duration::from_secs(1))), None);
    }

    #[test]
    fn spins_only_within_the_window_after_activity() {
        let t = Instant::now();
        let mut b = BusyPoll::new(40 * US);
        assert_eq!(b.spin_until(t, None), None, "no activity yet: sleep");
        b.active(t);
        assert_eq!(b.spin_until(t, None), Some(t + 40 * US));
        assert_eq!(b.spin_until(t + 39 * US, None), Some(t + 40 * US));
        assert_eq!(b.spin_until(t + 40 * US, None), None, "window over: sleep");
        b.active(t + 100 * US);
        assert_eq!(b.spin_until(t + 110 * US, None), Some(t + 140 * US), "new activity reopens it");
    }

    #[test]
    fn the_loops_own_deadline_ends_the_spin() {
        let t = Instant::now();
        let mut b = BusyPoll::new(40 * US);
        b.active(t);
        assert_eq!(b.spin_until(t, Some(10 * US)), Some(t + 10 * US));
        assert_eq!(b.spin_until(t, Some(Duration::ZERO)), None, "a deadline due now: no spin");
        assert_eq!(b.spin_until(t, Some(Duration::from_secs(1))), Some(t + 40 * US));
    }

    #[test]
    fn wait_returns_events_found_while_spinning() {
        let mut poll = Poll::new().expect("poll");
        let waker = mio::Waker::new(poll.registry(), mio::Token(7)).expect("waker");
        let mut events = Events::with_capacity(4);
        let mut b = BusyPoll::new(Duration::from_secs(60));
        b.active(Instant::now());
        waker.wake().expect("wake");
        b.wait(&mut poll, &mut events, None).expect("wait");
        assert_eq!(events.iter().map(|e| e.token()).collect::<Vec<_>>(), [mio::Token(7)]);
    }
}
