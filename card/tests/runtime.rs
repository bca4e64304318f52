//! The card runtime on the in-process card: link framing, sessions per link, RSA key
//! generations off the card's lock and the bound on what waits behind one.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use gmhsm_card::MAX_PARKED;
use gmhsm_card::testing::InProcessCard;
use gmhsm_proto::frame::{self, FrameHeader};
use gmhsm_proto::{CardFrame, Deframer, KeyAlg, PROTOCOL_VERSION, Principal, Request, Response, ServerFrame, Status};

fn keygen(label: &str) -> Request {
    let label = gmhsm_proto::Label::try_from(label).expect("label");
    Request::GenerateKey { label, alg: KeyAlg::Rsa3072, caps: gmhsm_proto::Capabilities::DEFAULT, domains: 0 }
}

/// Send `(id, session, request)` frames in one write.
fn send(link: &mut UnixStream, frames: Vec<(u64, u64, Request)>) {
    let mut sent = Vec::new();
    for (id, session, request) in frames {
        let header = FrameHeader { version: PROTOCOL_VERSION, id };
        let f = CardFrame { header, principal: Principal::Local, session, request };
        frame::encode_into(&f, &mut sent).expect("encode");
    }
    link.write_all(&sent).expect("send");
}

/// Read `n` answers, in the order they came.
fn read_answers(link: &mut UnixStream, n: usize) -> Vec<(u64, Result<Response, Status>)> {
    let mut deframer = Deframer::new();
    let mut got = Vec::new();
    while got.len() < n {
        let k = link.read(deframer.spare(64 * 1024)).expect("read");
        assert!(k > 0, "link closed after {} answers", got.len());
        deframer.commit(k);
        while let Some(body) = deframer.next_body().expect("frame") {
            let f: ServerFrame = frame::decode(body).expect("decode");
            got.push((f.header.id, f.result));
        }
    }
    got
}

/// Issue 12, finding 7: while one session's RSA key generation is computed, another
/// session on the same link is answered, and the generating session's later request waits
/// for its answer. Sent in one write: a keygen (session 1), a ping (session 2), a ping
/// (session 1). Before the split the card answered 1, 2, 3 (the ping waited for the primes);
/// now 2 comes first, then the key, then session 1's ping.
#[test]
fn other_sessions_are_answered_while_a_key_is_generated() {
    let card = InProcessCard::start();
    let mut link = UnixStream::connect(card.socket()).expect("connect");
    send(&mut link, vec![(1, 1, keygen("big")), (2, 2, Request::Ping), (3, 1, Request::Ping)]);
    let answers = read_answers(&mut link, 3);
    let ids: Vec<u64> = answers.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [2, 1, 3], "{answers:?}");
    assert_eq!(answers[0].1, Ok(Response::Pong));
    assert!(matches!(answers[1].1, Ok(Response::KeyGenerated { alg: KeyAlg::Rsa3072, .. })), "{answers:?}");
    assert_eq!(answers[2].1, Ok(Response::Pong));
}

/// What waits behind a session's key generation is bounded: with [`MAX_PARKED`] requests
/// waiting, one more of that session is answered `Busy` at once (not queued), while another
/// session is still served and every waiting request is answered after the key.
#[test]
fn requests_past_the_bound_behind_a_keygen_are_refused_busy() {
    let card = InProcessCard::start();
    let mut link = UnixStream::connect(card.socket()).expect("connect");
    let mut frames = vec![(1, 1, keygen("big"))];
    let over = 2 + MAX_PARKED as u64;
    frames.extend((2..=over).map(|id| (id, 1, Request::Ping)));
    frames.push((over + 1, 2, Request::Ping));
    send(&mut link, frames);
    let answers = read_answers(&mut link, MAX_PARKED + 3);
    let busy: Vec<u64> = answers.iter().filter(|(_, r)| *r == Err(Status::Busy)).map(|(id, _)| *id).collect();
    assert_eq!(busy, [over], "only the request past the bound is refused");
    let pos = |id: u64| answers.iter().position(|(i, _)| *i == id).expect("answered");
    assert!(pos(over) < pos(1), "refused before the key is done, not queued behind it");
    assert!(pos(over + 1) < pos(1), "the other session is served meanwhile");
    assert!(matches!(answers[pos(1)].1, Ok(Response::KeyGenerated { .. })), "{:?}", answers[pos(1)]);
    for id in 2..over {
        assert_eq!(answers[pos(id)].1, Ok(Response::Pong), "waiting request {id}");
        assert!(pos(id) > pos(1), "request {id} waited for the key");
    }
    // The session is usable again once its job is done.
    send(&mut link, vec![(over + 2, 1, Request::Ping)]);
    assert_eq!(read_answers(&mut link, 1), vec![(over + 2, Ok(Response::Pong))]);
}

/// The in-process card serves until dropped, then stops and leaves nothing behind.
#[test]
fn dropping_the_card_stops_it_and_removes_its_folder() {
    let card = InProcessCard::start();
    let dir = card.dir().to_path_buf();
    let mut link = UnixStream::connect(card.socket()).expect("connect");
    send(&mut link, vec![(1, 1, Request::Ping)]);
    assert_eq!(read_answers(&mut link, 1), vec![(1, Ok(Response::Pong))]);
    drop(link);
    drop(card);
    assert!(!dir.exists(), "folder removed");
}

/// A restart closes every link (the peer reads the end of its stream) and the card serves
/// again with its keys; the tap saw every frame.
#[test]
fn a_restart_closes_the_links_and_keeps_the_keys() {
    let mut card = InProcessCard::start();
    let mut link = UnixStream::connect(card.socket()).expect("connect");
    let label = gmhsm_proto::Label::try_from("kept").expect("label");
    let sm4 = Request::GenerateKey {
        label: label.clone(),
        alg: KeyAlg::Sm4,
        caps: gmhsm_proto::Capabilities::DEFAULT,
        domains: 0,
    };
    send(&mut link, vec![(1, 1, sm4)]);
    assert!(matches!(read_answers(&mut link, 1)[0].1, Ok(Response::KeyGenerated { .. })));
    card.restart();
    let mut rest = Vec::new();
    assert_eq!(link.read_to_end(&mut rest).expect("end of stream"), 0, "the link was closed");
    let mut link = UnixStream::connect(card.socket()).expect("connect again");
    send(&mut link, vec![(2, 1, Request::GetKeyInfo { label })]);
    assert!(matches!(read_answers(&mut link, 1)[0].1, Ok(Response::KeyInfo(_))), "the key survived");
    let ids: Vec<u64> = card.seen().iter().map(|f| f.header.id).collect();
    assert_eq!(ids, [1, 2]);
}
