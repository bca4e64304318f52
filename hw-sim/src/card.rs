//! The simulated crypto card process: the firmware behind a Unix socket speaking card-link
//! frames (`CardFrame` in, `ServerFrame` out), exactly what the daemon would see on hardware.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use gmhsm_firmware::Hsm;
use gmhsm_proto::frame::{self, FrameError, FrameHeader};
use gmhsm_proto::{CardFrame, Deframer, PROTOCOL_VERSION, ServerFrame, Status};

use crate::board::SimPlatform;

/// Most card-link connections served at once (the daemon's relay link, its TLS signing link,
/// the simulator's provisioning link).
const MAX_LINKS: usize = 8;

/// Serve card-link connections on `socket` until the process is killed. Each connection gets
/// a thread; the card itself is one state machine behind a mutex, so requests are executed
/// one at a time, in order per connection.
pub fn serve(hsm: Hsm<SimPlatform>, socket: &Path) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    log::info!("card: listening on {}", socket.display());
    let hsm = Arc::new(Mutex::new(hsm));
    let links = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                if links.load(Ordering::Relaxed) >= MAX_LINKS {
                    log::warn!("card: refusing a link: {MAX_LINKS} already open");
                    continue;
                }
                links.fetch_add(1, Ordering::Relaxed);
                let (hsm, links) = (hsm.clone(), links.clone());
                std::thread::spawn(move || {
                    if let Err(e) = serve_conn(&hsm, stream) {
                        log::warn!("card: link closed: {e}");
                    }
                    links.fetch_sub(1, Ordering::Relaxed);
                });
            }
            Err(e) => log::warn!("card: accept failed: {e}"),
        }
    }
    Ok(())
}

fn answer(header: FrameHeader, result: Result<gmhsm_proto::Response, Status>) -> ServerFrame {
    ServerFrame { header: FrameHeader { version: PROTOCOL_VERSION, id: header.id }, result }
}

fn serve_conn(hsm: &Mutex<Hsm<SimPlatform>>, mut stream: UnixStream) -> anyhow::Result<()> {
    let mut deframer = Deframer::new();
    let mut buf = vec![0u8; 64 * 1024];
    // A link with nothing to read for a few milliseconds lets the card do its idle work
    // (refilling the SM2 nonce pool), one batch at a time so requests are not held up.
    stream.set_read_timeout(Some(std::time::Duration::from_millis(5)))?;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                if let Ok(mut card) = hsm.lock() {
                    card.idle();
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Ok(());
        }
        deframer.push(&buf[..n]);
        let mut out = Vec::new();
        loop {
            let reply = match deframer.next_frame() {
                Ok(None) => break,
                Ok(Some(body)) => match frame::decode::<CardFrame>(&body) {
                    Ok(f) if f.header.version != PROTOCOL_VERSION => {
                        answer(f.header, Err(Status::UnsupportedVersion { supported: PROTOCOL_VERSION }))
                    }
                    Ok(f) => {
                        let result = match hsm.lock() {
                            Ok(mut card) => card.execute(&f.principal, f.session, f.request),
                            // A thread panicked inside the card: refuse rather than go on.
                            Err(_) => Err(Status::DeviceError),
                        };
                        answer(f.header, result)
                    }
                    Err(FrameError::Malformed { header }) => answer(
                        header.unwrap_or(FrameHeader { version: PROTOCOL_VERSION, id: 0 }),
                        Err(Status::BadFrame),
                    ),
                    Err(_) => answer(FrameHeader { version: PROTOCOL_VERSION, id: 0 }, Err(Status::BadFrame)),
                },
                Err(_) => answer(FrameHeader { version: PROTOCOL_VERSION, id: 0 }, Err(Status::FrameTooLarge)),
            };
            match frame::encode(&reply) {
                Ok(bytes) => out.extend_from_slice(&bytes),
                Err(_) => {
                    let fallback = answer(reply.header, Err(Status::Internal));
                    out.extend_from_slice(&frame::encode(&fallback).unwrap_or_default());
                }
            }
        }
        if !out.is_empty() {
            stream.write_all(&out)?;
        }
    }
}
