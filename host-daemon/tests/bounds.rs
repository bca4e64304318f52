//! The per-client-certificate connection bound and the per-application rate limit: each is
//! hit, leaves other applications unaffected, and recovers.

mod common;

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use gmhsm_client::Client;
use gmhsm_daemon::{Clock, RateLimit};
use gmhsm_proto::{Deframer, PROTOCOL_VERSION, Request, Response, Status};

/// A clock that moves only when the test says so.
struct ManualClock(Mutex<Instant>);

impl ManualClock {
    fn advance(&self, d: Duration) {
        *self.0.lock().expect("lock") += d;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.0.lock().expect("lock")
    }
}

#[test]
fn connections_per_client_certificate_are_bounded_and_recover() {
    let h = Harness::start(|c| c.max_connections_per_client = 1);
    h.pki.issue(&h.pki.ca, "app2");
    let mut first = h.client();
    first.ping().expect("first connection served");

    let second = Client::connect(&h.profile()).and_then(|mut c| c.ping());
    assert!(second.is_err(), "a second connection with the same certificate is refused");
    let mut other = Client::connect(&h.pki.profile("app2", "app2", h.addr)).expect("connect");
    other.ping().expect("another certificate is unaffected");
    first.ping().expect("the first connection is still served");

    first.close();
    let mut again = eventually("the daemon notices the close", || {
        let mut c = Client::connect(&h.profile()).ok()?;
        c.ping().ok().map(|_| c)
    });
    again.ping().expect("served again");
}

#[test]
fn refused_connection_gets_a_busy_frame() {
    let h = Harness::start(|c| c.max_connections_per_client = 1);
    let mut first = h.client();
    first.ping().expect("served");
    let mut raw = h.raw(true);
    let mut d = gmhsm_proto::Deframer::new();
    use std::io::Write;
    let _ = raw.write_all(&client_frame(gmhsm_proto::PROTOCOL_VERSION, 9, Request::Ping));
    assert_eq!(read_frame(&mut raw, &mut d), status(0, Status::Busy));
}

/// Send one Ping per id in `ids` at once; the answers' results in id order.
fn pings(s: &mut (impl Read + Write), ids: std::ops::RangeInclusive<u64>) -> Vec<Result<Response, Status>> {
    let mut wire = Vec::new();
    for id in ids.clone() {
        wire.extend(client_frame(PROTOCOL_VERSION, id, Request::Ping));
    }
    s.write_all(&wire).expect("write");
    let mut d = Deframer::new();
    let mut answers: Vec<_> = ids.map(|_| read_frame(s, &mut d)).collect();
    answers.sort_by_key(|f| f.header.id);
    answers.into_iter().map(|f| f.result).collect()
}

#[test]
fn rate_limit_answers_busy_without_relaying_and_refills() {
    let clock = Arc::new(ManualClock(Mutex::new(Instant::now())));
    let clock2 = clock.clone();
    let h = Harness::start(move |c| {
        c.rate_limit = Some(RateLimit { per_second: 1.0, burst: 2 });
        c.clock = clock2;
    });
    let pong: Result<Response, Status> = Ok(Response::Pong);
    let busy: Result<Response, Status> = Err(Status::Busy);
    // Raw connections: `gmhsm_client::Client::connect` spends a token on a Ping of its own.
    let mut s = h.raw(true);
    assert_eq!(pings(&mut s, 1..=3), vec![pong.clone(), pong.clone(), busy.clone()]);
    assert_eq!(h.seen.lock().expect("lock").len(), 2, "the refused request was not relayed");

    h.pki.issue(&h.pki.ca, "app2");
    let mut other = Client::connect(&h.pki.profile("app2", "app2", h.addr)).expect("connect");
    other.ping().expect("another application is unaffected");
    let mut same_app = h.raw(true);
    assert_eq!(pings(&mut same_app, 1..=1), vec![busy.clone()], "the bucket is per application, not per connection");

    clock.advance(Duration::from_secs(1));
    assert_eq!(pings(&mut s, 4..=5), vec![pong.clone(), busy.clone()], "one token refilled");
    clock.advance(Duration::from_secs(10));
    assert_eq!(
        pings(&mut s, 6..=8),
        vec![pong.clone(), pong.clone(), busy.clone()],
        "the bucket holds at most the burst"
    );
}
