//! Measurements for finding 7 (run with `--ignored --nocapture`; they print, and assert
//! nothing about time): how many of 5 fresh connections a good client gets served, and
//! whether the local socket answers, under silent, idle and garbage floods from other
//! loopback sources, and under a steady rate of silent connections.

mod common;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::*;
use gmhsm_proto::{Deframer, PROTOCOL_VERSION, Request, Response};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};

fn connect_from(from: u8, to: SocketAddr) -> TcpStream {
    let fd = socket(AddressFamily::Inet, SockType::Stream, SockFlag::empty(), None).expect("socket");
    bind(fd.as_raw_fd(), &SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, from), 0))).expect("bind");
    let SocketAddr::V4(v4) = to else { panic!("IPv4") };
    connect(fd.as_raw_fd(), &SockaddrIn::from(v4)).expect("connect");
    TcpStream::from(fd)
}

fn served(h: &Harness) -> usize {
    (0..5).filter(|_| gmhsm_client::Client::connect(&h.profile()).and_then(|mut c| c.ping()).is_ok()).count()
}

fn local_ping(path: &std::path::Path) -> bool {
    let Ok(mut s) = UnixStream::connect(path) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(&client_frame(PROTOCOL_VERSION, 1, Request::Ping)).is_err() {
        return false;
    }
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_frame(&mut s, &mut Deframer::new())))
        .is_ok_and(|f| f.result == Ok(Response::Pong))
}

fn start() -> Harness {
    Harness::start_with(|pki, c| {
        c.local = Some(gmhsm_daemon::LocalSocket {
            path: pki.dir.join("local.sock"),
            allowed_uids: vec![nix::unistd::getuid().as_raw()],
        });
    })
}

#[test]
#[ignore]
fn measure_floods() {
    for (what, n, garbage) in [("silent", 300, false), ("idle+garbage", 880, true)] {
        let h = start();
        let _flood: Vec<TcpStream> = (0..n)
            .map(|i| {
                let mut s = connect_from(2 + (i % 4) as u8, h.addr);
                if garbage && i % 3 == 0 {
                    let _ = s.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 0xde, 0xad]);
                }
                s
            })
            .collect();
        let local = (0..5).filter(|_| local_ping(&h.pki.dir.join("local.sock"))).count();
        println!("MEASURE {what} x{n}: good client served {}/5, local socket {local}/5", served(&h));
    }
}

#[test]
#[ignore]
fn measure_silent_rate() {
    for rate in [20u32, 30, 1000] {
        let h = start();
        let start = Instant::now();
        let mut held = Vec::new();
        let mut sent = 0u32;
        while start.elapsed() < Duration::from_secs(9) {
            let due = (start.elapsed().as_secs_f64() * f64::from(rate)) as u32;
            while sent < due && held.len() < 9000 {
                held.push(connect_from(2, h.addr));
                sent += 1;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        println!("MEASURE {rate} silent/s for 9 s ({sent} connections): good client served {}/5", served(&h));
    }
}
