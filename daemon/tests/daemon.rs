//! End-to-end tests of the daemon over real TLS, against the fake card of [`common`].

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use common::*;
use gmhsm_client::{Client, ClientError};
use gmhsm_proto::frame;
use gmhsm_proto::{Deframer, PROTOCOL_VERSION, Principal, Request, Response, Status};

#[test]
fn ping_pong_through_the_client() {
    let h = Harness::start(|_| {});
    let mut c = h.client();
    c.ping().expect("pong");
    c.ping().expect("second pong on the same connection");
    c.close();
}

#[test]
fn a_busy_polling_daemon_serves_and_wakes_again_after_sleeping() {
    let h = Harness::start(|c| c.busy_poll = Duration::from_micros(500));
    let mut c = h.client();
    c.ping().expect("pong");
    // Within the in-flight bound (32 by default), so every one is relayed.
    let results = c.pipeline(vec![Request::Ping; 30]).expect("pipeline");
    assert!(results.iter().all(|r| *r == Ok(Response::Pong)), "{results:?}");
    // Well past the window the loop blocks in the poll again: the next request must wake it.
    std::thread::sleep(Duration::from_millis(50));
    c.ping().expect("pong after the loop went back to sleep");
    // The harness's drop shuts the daemon down and checks that it stopped cleanly.
}

#[test]
fn principal_is_the_sha256_of_the_client_certificate() {
    let h = Harness::start(|_| {});
    h.client().ping().expect("pong");
    let want = Principal::Application { cert_sha256: Sha256::digest(&h.pki.client_der).into() };
    let seen = h.seen();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|p| *p == want), "{seen:?}");
}

#[test]
fn garbage_gets_bad_frame_and_the_connection_goes_on() {
    let h = Harness::start(|_| {});
    let mut s = h.raw(true);
    let mut d = Deframer::new();
    // Undecodable header: id 0.
    s.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).expect("write");
    assert_eq!(read_frame(&mut s, &mut d), status(0, Status::BadFrame));
    // A header that decodes, then junk: the answer carries the id.
    let mut body = client_frame(PROTOCOL_VERSION, 42, Request::Ping)[4..].to_vec();
    body.pop();
    body.push(0xEE);
    let mut wire = (body.len() as u32).to_be_bytes().to_vec();
    wire.extend(body);
    s.write_all(&wire).expect("write");
    assert_eq!(read_frame(&mut s, &mut d), status(42, Status::BadFrame));
    // An oversized length prefix: FrameTooLarge, and the stream resynchronises.
    let big = (frame::MAX_FRAME_LEN + 1) as u32;
    let mut wire = big.to_be_bytes().to_vec();
    wire.extend(std::iter::repeat_n(0u8, big as usize));
    s.write_all(&wire).expect("write");
    assert_eq!(read_frame(&mut s, &mut d), status(0, Status::FrameTooLarge));
    s.write_all(&client_frame(PROTOCOL_VERSION, 43, Request::Ping)).expect("write");
    let answer = read_frame(&mut s, &mut d);
    assert_eq!(answer.header.id, 43);
    assert_eq!(answer.result, Ok(Response::Pong));
}

#[test]
fn unknown_version_is_refused() {
    let h = Harness::start(|_| {});
    let mut s = h.raw(true);
    let mut d = Deframer::new();
    s.write_all(&client_frame(99, 5, Request::Ping)).expect("write");
    assert_eq!(read_frame(&mut s, &mut d), status(5, Status::UnsupportedVersion { supported: PROTOCOL_VERSION }));
    assert!(h.seen().is_empty(), "nothing reached the card");
}

#[test]
fn connection_without_client_certificate_is_refused() {
    let h = Harness::start(|_| {});
    let mut s = h.raw(false);
    // TLS 1.3: the client finishes its side of the handshake before the server checks it.
    let _ = s.write_all(&client_frame(PROTOCOL_VERSION, 1, Request::Ping));
    let mut buf = [0u8; 1024];
    match s.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("got {n} bytes of application data without a client certificate"),
        Err(e) => {
            let tls = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
            assert!(tls.is_some() || e.kind() == std::io::ErrorKind::ConnectionReset, "{e:?}");
        }
    }
    assert!(h.seen().is_empty(), "nothing reached the card");
    // The daemon still serves authenticated clients.
    h.client().ping().expect("pong");
}

#[test]
fn pipelined_requests_come_back_matched_by_id() {
    let h = Harness::start(|c| c.max_in_flight_per_conn = 500);
    let mut c = h.client();
    let mut requests = Vec::new();
    for i in 0..300 {
        requests.push(if i % 3 == 0 { Request::ListKeys } else { Request::Ping });
    }
    let results = c.pipeline(requests).expect("pipeline");
    assert_eq!(results.len(), 300);
    for (i, r) in results.iter().enumerate() {
        let want = if i % 3 == 0 { Ok(Response::Keys(Vec::new())) } else { Ok(Response::Pong) };
        assert_eq!(*r, want, "request {i}");
    }
}

#[test]
fn requests_past_the_in_flight_bound_get_busy_and_all_are_answered() {
    let h = Harness::start(|c| c.max_in_flight_per_conn = 2);
    let mut c = h.client();
    let results = c.pipeline(vec![Request::Ping; 200]).expect("pipeline");
    assert_eq!(results.len(), 200);
    assert!(results.iter().all(|r| *r == Ok(Response::Pong) || *r == Err(Status::Busy)), "{results:?}");
    c.ping().expect("the connection still works");
}

#[test]
fn card_link_failure_answers_card_unavailable_then_recovers() {
    let mut h = Harness::start(|_| {});
    let mut c = h.client();
    // A key generation the card is computing when its process dies: the card closes its links.
    let mut s = h.raw(true);
    s.write_all(&client_frame(PROTOCOL_VERSION, 5, slow_request("lost"))).expect("write");
    let has_it = |h: &Harness| h.card.seen().iter().any(|f| matches!(f.request, Request::GenerateKey { .. }));
    eventually("the card has the request", || has_it(&h).then_some(()));
    h.card.restart();
    assert_eq!(read_frame(&mut s, &mut Deframer::new()), status(5, Status::CardUnavailable));
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        match c.ping() {
            Ok(()) => break,
            Err(ClientError::Status(Status::CardUnavailable)) if Instant::now() < give_up => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(e) => panic!("card link did not come back: {e}"),
        }
    }
}

#[test]
fn idle_connection_is_closed_and_others_are_served() {
    let h = Harness::start(|c| c.idle_timeout = Duration::from_millis(200));
    let mut idle = h.client();
    std::thread::sleep(Duration::from_millis(600));
    assert!(idle.ping().is_err(), "idle connection was closed");
    h.client().ping().expect("a fresh connection works");
}

#[test]
fn connections_past_the_bound_are_closed() {
    let h = Harness::start(|c| c.max_connections = 1);
    let mut first = h.client();
    first.ping().expect("first connection served");
    let second = Client::connect(&h.profile()).and_then(|mut c| c.ping());
    assert!(second.is_err(), "second connection refused");
    first.ping().expect("first connection still served");
}

#[test]
fn labels_over_64_bytes_are_refused_before_sending() {
    let h = Harness::start(|_| {});
    let mut c = h.client();
    // `Client::connect` pings the card itself: count from here.
    let before = h.seen().len();
    assert!(matches!(c.delete_key(&"x".repeat(65)), Err(ClientError::InvalidArgument(_))));
    assert_eq!(h.seen().len(), before);
}
