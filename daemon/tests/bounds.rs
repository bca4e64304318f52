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

/// A request of one token (the card answers it with SM3's digest of "abc").
fn one_token() -> Request {
    Request::Hash { alg: gmhsm_proto::HashAlg::Sm3, data: b"abc".to_vec() }
}

/// SM3("abc"), GB/T 32905 example 1: the card's answer to [`one_token`].
fn digest_of_abc() -> Response {
    let hex = "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0";
    Response::Digest((0..32).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex")).collect())
}

/// Send one `request` per id in `ids` at once; the answers' results in id order.
fn send(
    s: &mut (impl Read + Write),
    ids: std::ops::RangeInclusive<u64>,
    request: &Request,
) -> Vec<Result<Response, Status>> {
    let mut wire = Vec::new();
    for id in ids.clone() {
        wire.extend(client_frame(PROTOCOL_VERSION, id, request.clone()));
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
    let pong: Result<Response, Status> = Ok(digest_of_abc());
    let busy: Result<Response, Status> = Err(Status::Busy);
    let pings = |s: &mut _, ids| send(s, ids, &one_token());
    let mut s = h.raw(true);
    assert_eq!(pings(&mut s, 1..=3), vec![pong.clone(), pong.clone(), busy.clone()]);
    assert_eq!(h.seen().len(), 2, "the refused request was not relayed");

    h.pki.issue(&h.pki.ca, "app2");
    let mut other = Client::connect(&h.pki.profile("app2", "app2", h.addr)).expect("connect");
    assert_eq!(
        send(&mut h.raw_as("app2"), 1..=1, &one_token()),
        vec![pong.clone()],
        "another application is unaffected"
    );
    other.ping().expect("a Ping costs nothing");
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

/// Guards finding 7: the rate limit charges each request its cost from the card's cost table.
/// On the old code every request cost one token, so an RSA-4096 key generation (seconds of the
/// card's time) passed as often as a signature. Now one generation leaves the application in
/// debt: its next paid request is `Busy`, while a `Ping` (free) still goes through, and another
/// application is not affected.
#[test]
fn an_rsa_key_generation_costs_more_tokens_than_a_ping() {
    let clock = Arc::new(ManualClock(Mutex::new(Instant::now())));
    let clock2 = clock.clone();
    let h = Harness::start(move |c| {
        c.rate_limit = Some(RateLimit { per_second: 100.0, burst: 200 });
        c.clock = clock2;
    });
    // A label reserved for the card's own keys: the card refuses it at once (`AccessDenied`),
    // but the daemon charges the request's full cost before relaying it.
    let keygen = Request::GenerateKey {
        label: gmhsm_proto::Label::try_from("tls:big").unwrap(),
        alg: gmhsm_proto::KeyAlg::Rsa4096,
        caps: gmhsm_proto::Capabilities::DEFAULT,
        domains: 0,
    };
    assert!(keygen.cost() > 100 * Request::Ping.cost().max(1));
    let mut s = h.raw(true);
    // Pings: free, all relayed.
    assert!(send(&mut s, 1..=20, &Request::Ping).iter().all(|r| *r == Ok(Response::Pong)));
    assert_eq!(send(&mut s, 101..=101, &keygen), vec![Err(Status::AccessDenied)], "relayed on a full bucket");
    assert_eq!(send(&mut s, 102..=102, &one_token()), vec![Err(Status::Busy)], "the key's cost is owed");
    assert_eq!(send(&mut s, 103..=103, &Request::Ping), vec![Ok(Response::Pong)]);
    assert_eq!(send(&mut s, 104..=104, &keygen), vec![Err(Status::Busy)], "no second key meanwhile");
    clock.advance(Duration::from_secs(1));
    assert_eq!(send(&mut s, 105..=105, &one_token()), vec![Err(Status::Busy)], "1 s repays 100 of 2000 tokens");
    clock.advance(Duration::from_secs(19));
    assert_eq!(send(&mut s, 106..=106, &one_token()), vec![Ok(digest_of_abc())], "repaid after 20 s");
}
