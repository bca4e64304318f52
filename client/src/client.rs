//! A blocking connection to one appliance: TLS 1.3 with a client certificate, frames inside.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ClientConfig, ClientConnection, StreamOwned};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use gmhsm_proto::frame::{self, FrameHeader};
use gmhsm_proto::{ClientFrame, Deframer, PROTOCOL_VERSION, Request, Response, ServerFrame, Status};

use crate::{ClientError, Profile};

mod requests;
#[cfg(test)]
mod tests;

#[cfg(test)]
use requests::check_message;
pub use requests::{sm2_with_id, to_label};

/// The byte stream under the frames: TLS over TCP (application servers), or the appliance's
/// local Unix socket (tools on the appliance, authenticated by peer credentials).
enum Transport {
    Tls(Box<StreamOwned<ClientConnection, PolledTcp>>),
    Local(UnixStream),
}

/// Room offered to one read of the connection.
const READ_CHUNK: usize = 16 * 1024;

/// The longest [`Client::set_busy_poll`] window (longer requests are cut to it).
pub const MAX_BUSY_POLL: Duration = Duration::from_millis(100);

/// The TCP stream under TLS. With a non-zero `spin` ([`Client::set_busy_poll`]) a read first
/// polls without blocking, yielding the CPU between polls, for up to `spin`, then blocks: an
/// answer that comes within the window is picked up without the thread going to sleep and
/// being woken, which on a virtual machine costs about as much as the appliance's own work
/// on a small request.
struct PolledTcp {
    tcp: TcpStream,
    spin: Duration,
}

impl Read for PolledTcp {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use nix::errno::Errno;
        use nix::sys::socket::{MsgFlags, recv};
        use std::os::fd::AsRawFd;
        if !self.spin.is_zero() && !buf.is_empty() {
            let until = Instant::now() + self.spin;
            loop {
                match recv(self.tcp.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT) {
                    Ok(n) => return Ok(n),
                    Err(Errno::EAGAIN | Errno::EINTR) => {}
                    Err(e) => return Err(e.into()),
                }
                if Instant::now() >= until {
                    break;
                }
                std::thread::yield_now();
            }
        }
        self.tcp.read(buf)
    }
}

impl Write for PolledTcp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tcp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Tls(s) => s.read(buf),
            Transport::Local(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Tls(s) => s.write(buf),
            Transport::Local(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Tls(s) => s.flush(),
            Transport::Local(s) => s.flush(),
        }
    }
}

/// An open, authenticated connection to an appliance. Not `Sync`: one caller at a time
/// (use [`Client::pipeline`] to have many requests in flight).
pub struct Client {
    stream: Transport,
    deframer: Deframer,
    next_id: u64,
    /// The address this connection reached (for failover reporting).
    peer: String,
}

impl Client {
    /// Connect to the appliance named by `profile` and complete the TLS handshake.
    ///
    /// Note: with TLS 1.3 the server checks the client certificate after the client considers
    /// the handshake done, so a rejected certificate shows as [`ClientError::Tls`] on the
    /// first call, not here.
    ///
    /// Failover: the profile's `address` is tried first, then each of its `failover`
    /// addresses in order; the first appliance that completes a handshake and answers a
    /// `Ping` is used. The error of the last one tried is returned when none does.
    pub fn connect(profile: &Profile) -> Result<Client, ClientError> {
        let config = tls_config(profile)?;
        let server_name = ServerName::try_from(profile.server_name.clone())
            .map_err(|e| ClientError::Config(format!("server_name {:?}: {e}", profile.server_name)))?;
        let mut last = None;
        for address in profile.addresses() {
            match Self::connect_one(address, &config, &server_name, profile.timeout) {
                Ok(c) => return Ok(c),
                Err(e @ ClientError::Config(_)) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Config("the profile names no address".into())))
    }

    fn connect_one(
        address: &str,
        config: &Arc<ClientConfig>,
        server_name: &ServerName<'static>,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let tcp = connect_tcp(address, timeout)?;
        let conn =
            ClientConnection::new(config.clone(), server_name.clone()).map_err(|e| ClientError::Tls(e.to_string()))?;
        let mut stream = StreamOwned::new(conn, PolledTcp { tcp, spin: Duration::ZERO });
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock).map_err(ClientError::from_stream)?;
        }
        let mut client = Client {
            stream: Transport::Tls(Box::new(stream)),
            deframer: Deframer::new(),
            next_id: 1,
            peer: address.to_string(),
        };
        // A Ping proves the server accepted our certificate and that its card answers, so
        // failover moves on from an appliance that is up but cannot serve.
        match client.call(Request::Ping) {
            Ok(_) | Err(ClientError::Status(Status::Busy)) => Ok(client),
            Err(e) => Err(e),
        }
    }

    /// Connect to the appliance's local socket (tools on the appliance itself). The daemon
    /// admits only the users it is configured for, by peer credentials.
    pub fn connect_local(socket: &Path, timeout: Duration) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(socket)
            .map_err(|e| ClientError::Io(io::Error::new(e.kind(), format!("{}: {e}", socket.display()))))?;
        stream.set_read_timeout(Some(timeout)).map_err(ClientError::Io)?;
        stream.set_write_timeout(Some(timeout)).map_err(ClientError::Io)?;
        Ok(Client {
            stream: Transport::Local(stream),
            deframer: Deframer::new(),
            next_id: 1,
            peer: socket.display().to_string(),
        })
    }

    /// Wait for answers by polling for up to `spin` before blocking (zero, the default: block
    /// at once). For latency-bound callers with a core to spare: a round trip saves the
    /// thread's sleep and wake-up when the answer comes within `spin`, at the price of up to
    /// `spin` of CPU per wait (the thread yields between polls); at most [`MAX_BUSY_POLL`].
    /// Connections to the local socket always block.
    pub fn set_busy_poll(&mut self, spin: Duration) {
        if let Transport::Tls(s) = &mut self.stream {
            s.sock.spin = spin.min(MAX_BUSY_POLL);
        }
    }

    /// The address (or socket path) this connection reached.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Send one request and wait for its answer.
    pub fn call(&mut self, request: Request) -> Result<Response, ClientError> {
        let id = self.next_id();
        let mut wire = Vec::new();
        encode_into(id, request, &mut wire)?;
        self.write(&wire)?;
        let answer = self.recv()?;
        match answer.header.id {
            got if got == id => answer.result.map_err(ClientError::Status),
            // The daemon could not read our frame's header: the answer is about this request.
            0 => match answer.result {
                Err(status) => Err(ClientError::Status(status)),
                Ok(_) => Err(ClientError::Protocol("a success answer without a request id".into())),
            },
            got => Err(ClientError::Protocol(format!("answer for request {got} while waiting for {id}"))),
        }
    }

    /// Send every request, then read every answer; answers are matched by request id and
    /// returned in the order of `requests`. The daemon answers `Status::Busy` for requests
    /// past its in-flight bound. Keep batches modest: all requests are written before any
    /// answer is read.
    pub fn pipeline(&mut self, requests: Vec<Request>) -> Result<Vec<Result<Response, Status>>, ClientError> {
        let first = self.next_id;
        let mut wire = Vec::new();
        let count = requests.len();
        for request in requests {
            let id = self.next_id();
            encode_into(id, request, &mut wire)?;
        }
        self.write(&wire)?;
        let mut results: Vec<Option<Result<Response, Status>>> = (0..count).map(|_| None).collect();
        for _ in 0..count {
            let answer = self.recv()?;
            let slot = answer
                .header
                .id
                .checked_sub(first)
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| results.get_mut(i))
                .filter(|slot| slot.is_none())
                .ok_or_else(|| ClientError::Protocol(format!("unexpected answer id {}", answer.header.id)))?;
            *slot = Some(answer.result);
        }
        // Every slot was filled exactly once: `count` answers, each to a distinct empty slot.
        Ok(results.into_iter().flatten().collect())
    }

    /// Close the connection politely (TLS close_notify).
    pub fn close(mut self) {
        if let Transport::Tls(s) = &mut self.stream {
            s.conn.send_close_notify();
        }
        let _ = self.stream.flush();
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    fn write(&mut self, wire: &[u8]) -> Result<(), ClientError> {
        self.stream.write_all(wire).map_err(ClientError::from_stream)?;
        self.stream.flush().map_err(ClientError::from_stream)
    }

    /// The next answer. Bytes are read straight into the deframer and the answer decoded
    /// from there (no bounce buffer to clear and copy on every read).
    fn recv(&mut self) -> Result<ServerFrame, ClientError> {
        loop {
            match self.deframer.next_body() {
                Ok(Some(body)) => {
                    return frame::decode::<ServerFrame>(body)
                        .map_err(|e| ClientError::Protocol(format!("undecodable answer: {e:?}")));
                }
                Ok(None) => {}
                Err(e) => return Err(ClientError::Protocol(format!("bad answer frame: {e:?}"))),
            }
            let n = self.stream.read(self.deframer.spare(READ_CHUNK)).map_err(ClientError::from_stream)?;
            if n == 0 {
                return Err(ClientError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the appliance closed the connection",
                )));
            }
            self.deframer.commit(n);
        }
    }
}

/// Append `request` as a frame with request id `id` (`wire` unchanged on error).
fn encode_into(id: u64, request: Request, wire: &mut Vec<u8>) -> Result<(), ClientError> {
    let frame = ClientFrame { header: FrameHeader { version: PROTOCOL_VERSION, id }, request };
    frame::encode_into(&frame, wire).map_err(|_| ClientError::InvalidArgument("request too large for one frame".into()))
}

/// A batch request's item count against its bound, before anything is sent.
pub(crate) fn check_batch(what: &str, n: usize, max: usize) -> Result<(), ClientError> {
    if n == 0 || n > max {
        return Err(ClientError::InvalidArgument(format!("{n} {what}; a batch holds 1 to {max}")));
    }
    Ok(())
}

pub(crate) fn unexpected(response: &Response) -> ClientError {
    ClientError::Protocol(format!("unexpected answer {}", response_name(response)))
}

/// The variant's name only: payloads (signatures, keys) stay out of error strings.
fn response_name(response: &Response) -> &'static str {
    match response {
        Response::Pong => "Pong",
        Response::Status(_) => "Status",
        Response::KeyGenerated { .. } => "KeyGenerated",
        Response::PublicKey { .. } => "PublicKey",
        Response::Signature(_) => "Signature",
        Response::Verified => "Verified",
        Response::Deleted => "Deleted",
        Response::Keys(_) => "Keys",
        _ => "(unknown)",
    }
}

fn connect_tcp(address: &str, timeout: Duration) -> Result<TcpStream, ClientError> {
    let addrs = address.to_socket_addrs().map_err(|e| match e.kind() {
        io::ErrorKind::InvalidInput => ClientError::Config(format!("address {address:?}: {e}")),
        _ => ClientError::Io(e),
    })?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{address} resolves to no address"));
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(tcp) => {
                tcp.set_read_timeout(Some(timeout)).map_err(ClientError::Io)?;
                tcp.set_write_timeout(Some(timeout)).map_err(ClientError::Io)?;
                tcp.set_nodelay(true).map_err(ClientError::Io)?;
                return Ok(tcp);
            }
            Err(e) => last = e,
        }
    }
    Err(ClientError::Io(last))
}

fn tls_config(profile: &Profile) -> Result<Arc<ClientConfig>, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in read_certs(&profile.ca_cert)? {
        roots
            .add(ca)
            .map_err(|e| ClientError::Config(format!("{}: unusable CA certificate: {e}", profile.ca_cert.display())))?;
    }
    let chain = read_certs(&profile.client_cert)?;
    let key = PrivateKeyDer::from_pem_file(&profile.client_key)
        .map_err(|e| ClientError::Config(format!("{}: {e}", profile.client_key.display())))?;
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| ClientError::Config(format!("client certificate and key: {e}")))?;
    Ok(Arc::new(config))
}

fn read_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ClientError::Config(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ClientError::Config(format!("{}: no CERTIFICATE in file", path.display())));
    }
    Ok(certs)
}
