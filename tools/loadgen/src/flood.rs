//! `gmhsm-bench --flood N`: what a good client gets while other loopback sources hold the
//! daemon's admission busy (the measurement behind security finding 7; the property itself is
//! tested in `daemon/tests/admission.rs`). The flood comes from 127.0.0.2 … 127.0.0.5 (bound
//! before connecting, so the daemon sees other sources than the good client's 127.0.0.1):
//! silent TCP connections, every third one sending a garbage TLS record with `--garbage`, all
//! at once or at `--flood-rate` connections a second for `--seconds`. Then five fresh
//! connections of the good client (each a TLS handshake and a Ping) and, with
//! `--local-socket`, five Pings on the local socket, are counted.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use gmhsm_client::{Client, Profile};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};

/// A TLS record header announcing a 64 KiB record, then noise.
const GARBAGE: [u8; 7] = [0x16, 0x03, 0x01, 0xff, 0xff, 0xde, 0xad];

/// How the flood is made.
pub struct Flood<'a> {
    pub connections: u32,
    pub garbage: bool,
    /// Connections a second (`None`: all at once).
    pub rate: Option<u32>,
    pub seconds: f64,
    pub local_socket: Option<&'a Path>,
}

fn connect_from(from: u8, to: SocketAddrV4) -> anyhow::Result<TcpStream> {
    let fd = socket(AddressFamily::Inet, SockType::Stream, SockFlag::empty(), None).context("socket")?;
    bind(fd.as_raw_fd(), &SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, from), 0)))
        .with_context(|| format!("bind 127.0.0.{from}"))?;
    connect(fd.as_raw_fd(), &SockaddrIn::from(to)).with_context(|| format!("connect from 127.0.0.{from}"))?;
    Ok(TcpStream::from(fd))
}

fn open_one(i: u32, to: SocketAddrV4, garbage: bool) -> anyhow::Result<TcpStream> {
    let mut s = connect_from(2 + (i % 4) as u8, to)?;
    if garbage && i % 3 == 0 {
        // The daemon may already have dropped it: that is what is measured, not an error.
        let _ = s.write_all(&GARBAGE);
    }
    Ok(s)
}

pub fn run(profile: &Profile, flood: &Flood<'_>) -> anyhow::Result<()> {
    let to = match profile.address.to_socket_addrs()?.find(SocketAddr::is_ipv4) {
        Some(SocketAddr::V4(v4)) if v4.ip().is_loopback() => v4,
        _ => anyhow::bail!("--flood needs an appliance on an IPv4 loopback address (the flood binds 127.0.0.2-5)"),
    };
    let t0 = Instant::now();
    let mut held = Vec::new();
    match flood.rate {
        None => {
            for i in 0..flood.connections {
                held.push(open_one(i, to, flood.garbage)?);
            }
        }
        Some(rate) => {
            while t0.elapsed().as_secs_f64() < flood.seconds && (held.len() as u32) < flood.connections {
                let due = (t0.elapsed().as_secs_f64() * f64::from(rate)) as u32;
                while (held.len() as u32) < due.min(flood.connections) {
                    let i = held.len() as u32;
                    held.push(open_one(i, to, flood.garbage)?);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    let served = (0..5).filter(|_| Client::connect(profile).and_then(|mut c| c.ping()).is_ok()).count();
    let local = flood.local_socket.map(|path| {
        (0..5)
            .filter(|_| Client::connect_local(path, Duration::from_secs(5)).and_then(|mut c| c.ping()).is_ok())
            .count()
    });
    println!(
        "# flood of {} {} connections from 127.0.0.2-5{} in {:.1} s: good client served {served}/5{}",
        held.len(),
        if flood.garbage { "silent and garbage" } else { "silent" },
        flood.rate.map_or(String::new(), |r| format!(" at {r}/s")),
        t0.elapsed().as_secs_f64(),
        local.map_or(String::new(), |n| format!(", local socket {n}/5")),
    );
    Ok(())
}
