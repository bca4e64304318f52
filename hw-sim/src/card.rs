//! The simulated crypto card process: the firmware behind a Unix socket speaking card-link
//! frames (`CardFrame` in, `ServerFrame` out), exactly what the daemon would see on hardware.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use gmhsm_firmware::Hsm;
use gmhsm_proto::frame::{self, FrameError, FrameHeader};
use gmhsm_proto::{CardFrame, Deframer, PROTOCOL_VERSION, ServerFrame, Status};

use crate::board::SimPlatform;

/// Serve card-link connections on `socket` until the process is killed. One connection at a
/// time (the daemon); requests are executed in order.
pub fn serve(mut hsm: Hsm<SimPlatform>, socket: &Path) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    log::info!("card: listening on {}", socket.display());
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                if let Err(e) = serve_conn(&mut hsm, stream) {
                    log::warn!("card: link closed: {e}");
                }
            }
            Err(e) => log::warn!("card: accept failed: {e}"),
        }
    }
    Ok(())
}

fn answer(header: FrameHeader, result: Result<gmhsm_proto::Response, Status>) -> ServerFrame {
    ServerFrame { header: FrameHeader { version: PROTOCOL_VERSION, id: header.id }, result }
}

fn serve_conn(hsm: &mut Hsm<SimPlatform>, mut stream: UnixStream) -> anyhow::Result<()> {
    let mut deframer = Deframer::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        deframer.push(&buf[..n]);
        let mut out = Vec::new();
        loop {
            let reply = match deframer.next_frame() {
                Ok(None) => break,
                Ok(Some(body)) => match frame::decode::<CardFrame>(&body) {
                    Ok(f) if f.header.version != PROTOCOL_VERSION => answer(
                        f.header,
                        Err(Status::UnsupportedVersion { supported: PROTOCOL_VERSION }),
                    ),
                    Ok(f) => answer(f.header, hsm.execute(&f.principal, f.session, f.request)),
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
