//! TLS server keys held by the crypto card: a rustls [`SigningKey`] whose signatures are
//! made by the card, so the daemon never holds the private key.
//!
//! Each card key has its own blocking connection to the card socket (not the event loop's
//! card link): a [`BlockingLink`], the one blocking card-link client, used by one signature
//! at a time behind a mutex. A signature is one
//! `CardFrame { principal: Local, session: u64::MAX - n, request: Sign { .. } }` and one
//! `ServerFrame` answer carrying `Response::Signature` (DER). Invariants:
//! * [`Signer::sign`] blocks for at most the signing timeout; it runs on a handshake worker
//!   thread (`handshake`), never on the event loop;
//! * a link that failed or timed out is dropped and reconnected on the next signature, so a
//!   late answer is never taken for the next request's (answers are also matched by id);
//! * a failure is `rustls::Error::General` with a fixed text: no card status, label or
//!   message bytes reach the peer; the log line carries the label and the status only.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::{debug, warn};
use rustls::sign::{Signer, SigningKey};
use rustls::{Error, SignatureAlgorithm, SignatureScheme};

use gmhsm_proto::link::{BlockingLink, LinkError};
use gmhsm_proto::{Label, Mechanism, Request, Response};

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
                link: Mutex::new(None),
            }),
        })
    }
}

impl CardSigningKey {
    /// Connect to the card now if not connected; a failure is logged and left for the first
    /// signature to retry.
    pub fn connect(&self) {
        let mut link = self.link.link.lock().unwrap_or_else(|p| p.into_inner());
        if link.is_some() {
            return;
        }
        match BlockingLink::connect(&self.link.path) {
            Ok(l) => *link = Some(l),
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
    link: Mutex<Option<BlockingLink>>,
}

impl SignLink {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        // A poisoned lock only means another signature panicked; the link is rebuilt below.
        let mut link = self.link.lock().unwrap_or_else(|p| p.into_inner());
        let deadline = Instant::now() + self.timeout;
        let reused = link.is_some();
        let result = match self.attempt(&mut link, message, deadline) {
            // A kept link the card closed meanwhile (a card restart): once more on a new one.
            Err(e) if reused && e.retryable() => {
                *link = None;
                debug!("event=card_sign label={} retry=true error=\"{e}\"", self.label);
                self.attempt(&mut link, message, deadline)
            }
            other => other,
        };
        result.map_err(|e| {
            *link = None;
            warn!("event=card_sign label={} error=\"{e}\"", self.label);
            Error::General(FAILED.into())
        })
    }

    fn attempt(
        &self,
        link: &mut Option<BlockingLink>,
        message: &[u8],
        deadline: Instant,
    ) -> Result<Vec<u8>, SignError> {
        let link = match link {
            Some(l) => l,
            None => link.insert(BlockingLink::connect(&self.path).map_err(|e| SignError::Link(LinkError::Io(e)))?),
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(SignError::Link(LinkError::Timeout));
        }
        let request =
            Request::Sign { label: self.label.clone(), mechanism: self.mechanism.clone(), message: message.to_vec() };
        match link.call(self.session, request, left).map_err(SignError::Link)? {
            Ok(Response::Signature(sig)) => Ok(sig),
            Ok(_) => Err(SignError::Card("card answered with no signature".into())),
            Err(status) => Err(SignError::Card(format!("card status {status:?}"))),
        }
    }
}

/// Why one attempt failed.
enum SignError {
    Link(LinkError),
    /// The card answered, with no signature: final.
    Card(String),
}

impl SignError {
    fn retryable(&self) -> bool {
        matches!(self, SignError::Link(e) if e.retryable())
    }
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignError::Link(e) => write!(f, "link: {e}"),
            SignError::Card(why) => f.write_str(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gmhsm_proto::frame;
    use gmhsm_proto::{CardFrame, Deframer, ServerFrame};
    use std::io::{Read, Write};
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
