//! Admission before authentication (finding 7): silent, idle or garbage connections from one
//! source cannot lock out a well-behaved client from another source, nor the local tools
//! socket. The attackers connect from other loopback addresses (127.0.0.2 and up), the good
//! client from 127.0.0.1.

mod common;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::*;
use gmhsm_daemon::LocalSocket;
use gmhsm_proto::{Deframer, PROTOCOL_VERSION, Request, Response};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};

/// A TCP connection to `to` from the loopback address `127.0.0.<from>`.
fn connect_from(from: u8, to: SocketAddr) -> TcpStream {
    let fd = socket(AddressFamily::Inet, SockType::Stream, SockFlag::empty(), None).expect("socket");
    bind(fd.as_raw_fd(), &SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, from), 0))).expect("bind");
    let SocketAddr::V4(v4) = to else { panic!("IPv4 listener") };
    connect(fd.as_raw_fd(), &SockaddrIn::from(v4)).expect("connect");
    TcpStream::from(fd)
}

/// Open `n` connections from the sources `sources` in turn: silent ones, and every third
/// sending garbage that is not TLS.
fn flood(addr: SocketAddr, n: usize, sources: &[u8]) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut s = connect_from(sources[i % sources.len()], addr);
            if i % 3 == 0 {
                let _ = s.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 0xde, 0xad]);
            }
            s
        })
        .collect()
}

/// How many of `tries` fresh connections of the good client (127.0.0.1) are served a Ping.
fn served(h: &Harness, tries: usize) -> usize {
    (0..tries).filter(|_| gmhsm_client::Client::connect(&h.profile()).and_then(|mut c| c.ping()).is_ok()).count()
}

/// A Ping over the local socket at `path`.
fn local_ping(path: &std::path::Path) -> bool {
    let Ok(mut s) = UnixStream::connect(path) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(&client_frame(PROTOCOL_VERSION, 1, Request::Ping)).is_err() {
        return false;
    }
    let mut d = Deframer::new();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_frame(&mut s, &mut d)))
        .is_ok_and(|f| f.result == Ok(Response::Pong))
}

fn with_local(pki: &Pki, c: &mut gmhsm_daemon::DaemonConfig) {
    c.local =
        Some(LocalSocket { path: pki.dir.join("local.sock"), allowed_uids: vec![nix::unistd::getuid().as_raw()] });
}

/// Guards finding 7: on the old code, `max_connections` silent TCP connections (handshakes
/// that never start) refused every later connection, network and local alike, for the
/// handshake timeout. Now the silent source evicts its own oldest handshakes: the good
/// client from another source and the local socket are served every time.
#[test]
fn silent_connections_from_one_source_starve_neither_another_source_nor_the_local_socket() {
    let h = Harness::start_with(|pki, c| {
        c.max_connections = 32;
        with_local(pki, c);
    });
    let _silent = flood(h.addr, 200, &[2]);
    assert_eq!(served(&h, 5), 5, "the good client is served");
    assert!(local_ping(&h.pki.dir.join("local.sock")), "the local socket is served");
}

/// Guards finding 7: 880 idle or garbage connections from several sources left a
/// well-behaved client unserved (0 of 5) and the local socket resetting its connections.
/// Now the flood's handshakes are evicted, oldest first, from the busiest source.
#[test]
fn an_idle_and_garbage_flood_does_not_stop_a_good_client() {
    let h = Harness::start_with(with_local);
    let _flood = flood(h.addr, 880, &[2, 3, 4, 5]);
    assert_eq!(served(&h, 5), 5, "the good client is served");
    for _ in 0..3 {
        assert!(local_ping(&h.pki.dir.join("local.sock")), "the local socket is served");
    }
}

/// Local tools have a budget of their own: a full local budget does not take network room,
/// and network connections never take local room.
#[test]
fn the_local_socket_has_its_own_budget() {
    let h = Harness::start_with(|pki, c| {
        c.max_connections = 2;
        c.max_local_connections = 2;
        with_local(pki, c);
    });
    let path = h.pki.dir.join("local.sock");
    let held: Vec<UnixStream> = (0..2).map(|_| UnixStream::connect(&path).expect("local")).collect();
    let mut c1 = h.client();
    let mut c2 = h.client();
    c1.ping().expect("network served while the local budget is full");
    c2.ping().expect("network served while the local budget is full");
    assert!(!local_ping(&path), "a third local connection is refused");
    drop(held);
    eventually("the local budget frees up", || local_ping(&path).then_some(()));
}
