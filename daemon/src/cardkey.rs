//! TLS server keys held by the crypto card: a rustls [`SigningKey`] whose signatures are
//! made by the card, so the daemon never holds the private key.
//!
//! Each card key has its own blocking connection to the card socket (not the event loop's
//! card link), used by one signature at a time behind a mutex. A signature is one
//! `CardFrame { principal: Local, session: u64::MAX - n, request: Sign { .. } }` and one
//! `ServerFrame` answer carrying `Response::Signature` (DER). Invariants:
//! * [`Signer::sign`] blocks for at most the signing timeout; it runs on a handshake worker
//!   thread (`handshake`), never on the event loop;
//! * a link that failed or timed out is dropped and reconnected on the next signature, so a
//!   late answer is never taken for the next request's (answers are also matched by id);
//! * a failure is `rustls::Error::General` with a fixed text: no card status, label or
//!   message bytes reach the peer; the log line carries the label and the status only.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::{debug, warn};
use rustls::sign::{Signer, SigningKey};
use rustls::{Error, SignatureAlgorithm, SignatureScheme};

use gmhsm_proto::frame::{self, FrameHeader};
use gmhsm_proto::{CardFrame, Deframer, Label, Mechanism, PROTOCOL_VERSION, Principal, Request, Response, ServerFrame};

use crate::config::CardKeyScheme;

/// What the peer learns when the card does not sign: nothing more than this.
const FAILED: &str = "TLS key unavailable";

/// The TLS signature scheme of a card key scheme.
pub fn tls_scheme(scheme: CardKeyScheme) -> SignatureScheme {
    match scheme {
        CardKeyScheme::EcdsaP256Sha256 => SignatureScheme::ECDSA_NISTP256_SHA256,
        CardKeyScheme::Sm2Sm3 => gmhsm_tls_sm::SM2SIG_SM3,
    }
}

/// The card mechanism that makes exactly the signature `tls_scheme(scheme)` needs.
fn mechanism(scheme: CardKeyScheme) -> Mechanism {
    match scheme {
        CardKeyScheme::EcdsaP256Sha256 => Mechanism::EcdsaP256Sha256,
        CardKeyScheme::Sm2Sm3 => {
            let mut distid = heapless::Vec::new();
            // 23 bytes, far below the bound of 128.
            let _ = distid.extend_from_slice(gmhsm_tls_sm::TLS13_DISTID.as_bytes());
            Mechanism::Sm2Sm3 { distid }
        }
    }
}

/// A card-held TLS key, for a rustls `CertifiedKey`.
pub struct CardSigningKey {
    scheme: CardKeyScheme,
    link: Arc<SignLink>,
}

impl CardSigningKey {
    /// A key `label` on the card at `card_socket`, signing with `scheme`. `session` is the
    /// card session number of its link (distinct from every connection's). Nothing is
    /// connected until the first signature.
    pub fn new(
        label: &str,
        scheme: CardKeyScheme,
        card_socket: PathBuf,
        session: u64,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let label =
            Label::try_from(label).map_err(|_| anyhow::anyhow!("card TLS key label `{label}` is over 64 bytes"))?;
        anyhow::ensure!(!label.is_empty(), "card TLS key label is empty");
        Ok(CardSigningKey {
            scheme,
            link: Arc::new(SignLink {
                label,
                mechanism: mechanism(scheme),
                path: card_socket,
                session,
                timeout,
                state: Mutex::new(LinkState::default()),
            }),
        })
    }
}

impl CardSigningKey {
    /// Connect to the card now if not connected; a failure is logged and left for the first
    /// signature to retry.
    pub fn connect(&self) {
        let mut state = self.link.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.stream.is_some() {
            return;
        }
        match UnixStream::connect(&self.link.path) {
            Ok(s) => {
                state.stream = Some(s);
                state.deframer = Deframer::new();
            }
            Err(e) => warn!("event=card_sign label={} error=\"connect: {e}\"", self.link.label),
        }
    }
}

impl fmt::Debug for CardSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardSigningKey")
            .field("label", &self.link.label)
            .field("scheme", &self.scheme)
            .finish_non_exhaustive()
    }
}

impl SigningKey for CardSigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        let scheme = tls_scheme(self.scheme);
        offered
            .contains(&scheme)
            .then(|| Box::new(CardSigner { scheme, link: Arc::clone(&self.link) }) as Box<dyn Signer>)
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        match self.scheme {
            CardKeyScheme::EcdsaP256Sha256 => SignatureAlgorithm::ECDSA,
            CardKeyScheme::Sm2Sm3 => gmhsm_tls_sm::sign::SM2_SIGNATURE_ALGORITHM,
        }
    }
}

/// One signature operation chosen for a handshake.
struct CardSigner {
    scheme: SignatureScheme,
    link: Arc<SignLink>,
}

impl fmt::Debug for CardSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardSigner")
            .field("label", &self.link.label)
            .field("scheme", &self.scheme)
            .finish_non_exhaustive()
    }
}

impl Signer for CardSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        self.link.sign(message)
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}

/// The key's own connection to the card.
struct SignLink {
    label: Label,
    mechanism: Mechanism,
    path: PathBuf,
    session: u64,
    timeout: Duration,
    state: Mutex<LinkState>,
}

#[derive(Default)]
struct LinkState {
    stream: Option<UnixStream>,
    deframer: Deframer,
    next_id: u64,
}

/// Why one attempt failed.
enum Failure {
    /// The link broke before an answer came: worth one retry on a fresh connection.
    Link(io::Error),
    /// No answer in time, or the card answered with an error: give up.
    Final(String),
}

impl SignLink {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        // A poisoned lock only means another signature panicked; the state is rebuilt below.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let deadline = Instant::now() + self.timeout;
        let reused = state.stream.is_some();
        let first = self.attempt(&mut state, message, deadline);
        let result = match first {
            Err(Failure::Link(e)) if reused => {
                state.stream = None;
                debug!("event=card_sign label={} retry=true error=\"{e}\"", self.label);
                self.attempt(&mut state, message, deadline)
            }
            other => other,
        };
        result.map_err(|f| {
            state.stream = None;
            let why = match f {
                Failure::Link(e) => format!("link: {e}"),
                Failure::Final(why) => why,
            };
            warn!("event=card_sign label={} error=\"{why}\"", self.label);
            Error::General(FAILED.into())
        })
    }

    fn attempt(&self, state: &mut LinkState, message: &[u8], deadline: Instant) -> Result<Vec<u8>, Failure> {
        if state.stream.is_none() {
            let s = UnixStream::connect(&self.path).map_err(Failure::Link)?;
            state.stream = Some(s);
            state.deframer = Deframer::new();
        }
        state.next_id = state.next_id.wrapping_add(1).max(1);
        let id = state.next_id;
        let bytes = frame::encode(&CardFrame {
            header: FrameHeader { version: PROTOCOL_VERSION, id },
            principal: Principal::Local,
            session: self.session,
            request: Request::Sign {
                label: self.label.clone(),
                mechanism: self.mechanism.clone(),
                message: message.to_vec(),
            },
        })
        .map_err(|_| Failure::Final("request does not encode".into()))?;
        let LinkState { stream, deframer, .. } = state;
        let Some(stream) = stream.as_mut() else {
            return Err(Failure::Final("no link".into()));
        };
        stream.set_write_timeout(Some(remaining(deadline)?)).map_err(Failure::Link)?;
        stream.write_all(&bytes).map_err(timeout_or_link)?;
        let mut buf = [0u8; 4096];
        loop {
            while let Some(body) =
                deframer.next_frame().map_err(|_| Failure::Final("card sent an oversized frame".into()))?
            {
                let answer: ServerFrame =
                    frame::decode(&body).map_err(|_| Failure::Final("card answer does not decode".into()))?;
                if answer.header.id != id {
                    continue; // a late answer to an earlier, abandoned request
                }
                return match answer.result {
                    Ok(Response::Signature(sig)) => Ok(sig),
                    Ok(_) => Err(Failure::Final("card answered with no signature".into())),
                    Err(status) => Err(Failure::Final(format!("card status {status:?}"))),
                };
            }
            stream.set_read_timeout(Some(remaining(deadline)?)).map_err(Failure::Link)?;
            match stream.read(&mut buf) {
                Ok(0) => {
                    return Err(Failure::Link(io::Error::new(io::ErrorKind::UnexpectedEof, "card closed the link")));
                }
                Ok(n) => deframer.push(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(timeout_or_link(e)),
            }
        }
    }
}

/// Time left before `deadline`; none left is a final failure (a zero timeout would mean
/// "block forever" to the socket).
fn remaining(deadline: Instant) -> Result<Duration, Failure> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() { Err(Failure::Final("no answer in time".into())) } else { Ok(left) }
}

fn timeout_or_link(e: io::Error) -> Failure {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Failure::Final("no answer in time".into()),
        _ => Failure::Link(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A card that answers each connection's requests with `answer`, closing the connection
    /// after `per_conn` answers (`None`: never answering at all).
    fn card(name: &str, per_conn: Option<usize>) -> (PathBuf, std::sync::mpsc::Receiver<u64>) {
        let dir = std::env::temp_dir().join(format!("gmhsmd-cardkey-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("card.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(mut s) = s else { return };
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let mut d = Deframer::new();
                    let mut buf = [0u8; 4096];
                    let mut answered = 0;
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 {
                            return;
                        }
                        d.push(&buf[..n]);
                        while let Ok(Some(body)) = d.next_frame() {
                            let f: CardFrame = frame::decode(&body).expect("card frame");
                            let _ = tx.send(f.session);
                            let Some(limit) = per_conn else { continue };
                            let result = match f.request {
                                Request::Sign { label, .. } if label.as_str() == "k" => {
                                    Ok(Response::Signature(vec![0x30, 0]))
                                }
                                _ => Err(gmhsm_proto::Status::UnknownKey),
                            };
                            let out = frame::encode(&ServerFrame { header: f.header, result }).expect("encode");
                            let _ = s.write_all(&out);
                            answered += 1;
                            if answered == limit {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (path, rx)
    }

    fn signer(label: &str, path: PathBuf, timeout: Duration) -> Box<dyn Signer> {
        let key = CardSigningKey::new(label, CardKeyScheme::EcdsaP256Sha256, path, 7, timeout).expect("key");
        assert!(key.choose_scheme(&[SignatureScheme::ED25519]).is_none());
        key.choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256]).expect("scheme offered")
    }

    #[test]
    fn reconnects_when_the_card_dropped_the_link() {
        let (path, seen) = card("reconnect", Some(1));
        let s = signer("k", path, Duration::from_secs(5));
        assert_eq!(s.sign(b"one").expect("first"), vec![0x30, 0]);
        // The card closed that connection; the next signature goes over a new one.
        assert_eq!(s.sign(b"two").expect("second"), vec![0x30, 0]);
        assert_eq!(seen.try_iter().collect::<Vec<_>>(), [7, 7]);
    }

    #[test]
    fn failures_are_opaque_and_bounded_in_time() {
        let (path, _seen) = card("status", Some(usize::MAX));
        let e = signer("other", path, Duration::from_secs(5)).sign(b"m").expect_err("unknown key");
        assert_eq!(e, Error::General(FAILED.into()));

        let (path, _seen) = card("silent", None);
        let started = Instant::now();
        let e = signer("k", path, Duration::from_millis(300)).sign(b"m").expect_err("no answer");
        assert_eq!(e, Error::General(FAILED.into()));
        assert!(started.elapsed() < Duration::from_secs(3));

        let e = signer("k", "/nonexistent/card.sock".into(), Duration::from_secs(1)).sign(b"m").expect_err("no card");
        assert_eq!(e, Error::General(FAILED.into()));
        assert!(
            CardSigningKey::new(&"x".repeat(65), CardKeyScheme::Sm2Sm3, PathBuf::new(), 0, Duration::from_secs(1))
                .is_err()
        );
    }
}
