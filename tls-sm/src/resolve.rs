//! Server certificate choice per client: an SM2 certificate for clients that speak
//! `sm2sig_sm3`, a standard (ECDSA / RSA / Ed25519) certificate for everyone else.
//!
//! In TLS 1.3 the certificate is independent of the cipher suite; what a client can verify is
//! told by its `signature_algorithms` extension. rustls asks a [`ResolvesServerCert`] for the
//! certificate before it picks the suite, passing the `ClientHello`.

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::sign::SM2SIG_SM3;

/// Picks `sm` when the client offers `sm2sig_sm3`, `standard` otherwise.
///
/// Invariant (checked by [`SmOrStandardResolver::new`]): `sm`'s key signs `sm2sig_sm3`, so
/// a client that offered it always gets a usable certificate.
#[derive(Debug)]
pub struct SmOrStandardResolver {
    sm: Arc<CertifiedKey>,
    standard: Arc<CertifiedKey>,
}

impl SmOrStandardResolver {
    /// Pairs an SM2 certificate with a standard one. Returns `None` if `sm`'s key cannot sign
    /// `sm2sig_sm3` (it is not an SM2 key).
    pub fn new(sm: Arc<CertifiedKey>, standard: Arc<CertifiedKey>) -> Option<Self> {
        sm.key.choose_scheme(&[SM2SIG_SM3])?;
        Some(Self { sm, standard })
    }
}

impl ResolvesServerCert for SmOrStandardResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if client_hello.signature_schemes().contains(&SM2SIG_SM3) {
            Some(Arc::clone(&self.sm))
        } else {
            Some(Arc::clone(&self.standard))
        }
    }
}
