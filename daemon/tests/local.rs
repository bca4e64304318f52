//! The local tools socket: same frames without TLS, authenticated by the peer's uid.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::*;
use gmhsm_daemon::LocalSocket;
use gmhsm_proto::{Deframer, PROTOCOL_VERSION, Principal, Request, Response};

fn start(allowed: impl Fn(u32) -> Vec<u32>) -> Harness {
    let uid = nix::unistd::getuid().as_raw();
    Harness::start_with(|pki, c| {
        c.local = Some(LocalSocket { path: pki.dir.join("gmhsmd.sock"), allowed_uids: allowed(uid) });
    })
}

fn connect(h: &Harness) -> UnixStream {
    let s = UnixStream::connect(h.pki.dir.join("gmhsmd.sock")).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    s
}

#[test]
fn allowed_uid_is_served_as_local() {
    let h = start(|uid| vec![uid]);
    let mut s = connect(&h);
    let mut d = Deframer::new();
    s.write_all(&client_frame(PROTOCOL_VERSION, 7, Request::Ping)).expect("write");
    let answer = read_frame(&mut s, &mut d);
    assert_eq!(answer.header.id, 7);
    assert_eq!(answer.result, Ok(Response::Pong));
    assert_eq!(h.seen(), vec![Principal::Local]);
    // TLS clients are served alongside.
    h.client().ping().expect("pong over TLS");
}

#[test]
fn other_uid_is_closed() {
    let h = start(|uid| vec![uid.wrapping_add(1)]);
    let mut s = connect(&h);
    let _ = s.write_all(&client_frame(PROTOCOL_VERSION, 7, Request::Ping));
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("got {n} bytes on a refused local connection"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e:?}"),
    }
    assert!(h.seen().is_empty(), "nothing reached the card");
}
