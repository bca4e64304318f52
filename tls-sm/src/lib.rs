//! RFC 8998 ShangMi crypto provider for rustls 0.23, on the RustCrypto crates.
//!
//! The private link between application servers and the appliance (`docs/architecture.md`;
//! `docs/protocol.md`) speaks TLS 1.3 with the RFC 8998 suite and a standard suite beside it. This
//! crate is the `rustls::crypto::CryptoProvider` for that: [`provider`] offers
//! `TLS_SM4_GCM_SM3` with `curveSM2` first and then ring's TLS 1.3 suites and groups, verifies
//! SM2 certificates and `sm2sig_sm3` signatures beside ring's algorithms, and loads SM2 keys
//! beside ring's. [`certs`] makes SM2 certificates, [`SmOrStandardResolver`] picks the SM2 or
//! the standard server certificate per client.
//!
//! # What is hand-written, and why
//!
//! No published crate implements RFC 8998 for rustls (rustls ships ring and aws-lc-rs
//! providers, neither with SM algorithms). The primitives are RustCrypto's: `sm2` (curve,
//! SM2 signatures), `sm3`, `sm4`, `aes-gcm`'s generic GCM over SM4, `hmac`. What is ours is the
//! glue to rustls' provider traits, each in its own module with known-answer tests:
//!
//! | module | rustls trait | what |
//! |---|---|---|
//! | [`hash`] | `hash::Hash`, `hmac::Hmac` | SM3 transcript hash, HMAC-SM3; HKDF-SM3 is rustls' `HkdfUsingHmac` over it |
//! | [`aead`] | `Tls13AeadAlgorithm`, `MessageEncrypter/Decrypter` | SM4-GCM record protection (RFC 8446 §5.2 unchanged) |
//! | [`kx`] | `SupportedKxGroup`, `ActiveKeyExchange` | `curveSM2` ECDHE, uncompressed points, shared secret = X |
//! | [`sign`] | `SigningKey`, `Signer`, `KeyProvider` | `sm2sig_sm3` signing; SM2 PKCS#8 keys, others to ring |
//! | [`verify`] | webpki `SignatureVerificationAlgorithm` | SM2-with-SM3 for chains and for `CertificateVerify` |
//! | [`certs`] | — | X.509 v3 SM2 certificates (rcgen has no SM2) |
//! | [`resolve`] | `ResolvesServerCert` | SM2 certificate for SM clients, standard for the rest |
//!
//! # Code points (RFC 8998 §3)
//!
//! | name | value | here |
//! |---|---|---|
//! | `TLS_SM4_GCM_SM3` | 0x00C6 | [`TLS13_SM4_GCM_SM3`], [`TLS_SM4_GCM_SM3_ID`] |
//! | `curveSM2` | 41 (0x0029) | [`CURVE_SM2`], [`CURVE_SM2_GROUP`] |
//! | `sm2sig_sm3` | 0x0708 | [`SM2SIG_SM3`] |
//! | SM2 curve OID | 1.2.156.10197.1.301 | [`verify::SM2_PUBLIC_KEY_ALG_ID`] (with `id-ecPublicKey`) |
//! | SM2-with-SM3 OID | 1.2.156.10197.1.501 | [`verify::SM2_SM3_ALG_ID`] |
//!
//! # The SM2 distinguishing identifier
//!
//! An SM2 signature hashes `Z = SM3(ENTL ‖ ID ‖ curve ‖ public key)` before the message, so
//! signer and verifier must agree on `ID`. Two IDs are in use, and this crate uses each where
//! its peers do:
//!
//! - **TLS 1.3 `CertificateVerify`: `"TLSv1.3+GM+Cipher+Suite"`** ([`TLS13_DISTID`]). RFC 8998
//!   §3.2.1 fixes this string for `sm2sig_sm3` in TLS 1.3. It is what Tongsuo
//!   (`HANDSHAKE_SM2_ID` in `tls_construct_cert_verify` / `tls_process_cert_verify`), GmSSL 3
//!   (`TLS13_SM2_ID`) and OpenSSL's TLS stack (which sets it internally from the TLS version)
//!   sign and verify with. Note that `1234567812345678` would *not* interoperate here.
//! - **Certificate signatures: `"1234567812345678"`** ([`CERT_DISTID`]), the default ID of
//!   GM/T 0009 / GB/T 35276, used by OpenSSL, Tongsuo (`CERTVRIFY_SM2_ID`) and GmSSL for
//!   X.509. [`certs`] signs with it and [`verify::SM2_SM3_CERT`] verifies chains with it.
//!
//! rustls' `WebPkiSupportedAlgorithms` keeps chain algorithms (`all`) apart from handshake
//! algorithms (`mapping`), which is how one key type gets two IDs (see [`verify`]).
//! OpenSSL before 4.0 verifies certificates with an *empty* ID by default: with Debian's
//! OpenSSL 3.0, `openssl verify -vfyopt distid:1234567812345678 -CAfile ca.pem ee.pem` is
//! needed (plain `openssl verify` reports "certificate signature failure"); see
//! `tests/openssl.rs`.
//!
//! # Interoperability
//!
//! Tested rustls ⇄ rustls only (`tests/handshake.rs`). Debian's OpenSSL 3.0 `s_server` /
//! `s_client` do not implement the RFC 8998 TLS 1.3 suites (OpenSSL added them only after 3.x),
//! so no OpenSSL TLS interop is possible here; OpenSSL is used to cross-check certificates,
//! keys, SM2 signatures under both IDs, HMAC-SM3 and HKDF-SM3 (`tests/openssl.rs`). SM4-GCM is
//! checked against the RFC 8998 Appendix A.1 vector. Tongsuo and GmSSL are the natural next
//! interop peers.
//!
//! # Limits
//!
//! - TLS 1.3 only. No TLCP / GB/T 38636 (the TLS 1.1-based dual-certificate protocol), no
//!   `TLS_SM4_CCM_SM3` (0x00C7), no QUIC, and no secret extraction for kernel TLS.
//! - rustls negotiates suite, group and signature scheme independently, so with [`provider`]
//!   a peer can end up with e.g. `TLS_SM4_GCM_SM3` over X25519. RFC 8998's profile (all three
//!   SM) is what [`sm_only_provider`] gives; use it where the profile is mandatory.
//! - `curveSM2` is the first key share a client sends; against a server without it, rustls
//!   falls back with one HelloRetryRequest.
//! - SM2 keys are read from PKCS#8 with `id-ecPublicKey` + the SM2 curve OID only (OpenSSL 3
//!   writes that); SEC1 keys are refused so that a curve-less SEC1 key is never taken for SM2.
//! - `sm2::dsa::SigningKey` does not zeroize its scalar on drop (the `SecretKey`s used for key
//!   exchange and in [`certs`] do). RustCrypto `sm4` uses table look-ups, which are not
//!   constant-time; both concern the TLS identity key and session keys in the daemon process,
//!   never the card's keys.
//!
//! # Using it in the daemon and the client
//!
//! ```
//! use std::sync::Arc;
//! use std::time::{Duration, SystemTime};
//! use gmhsm_tls_sm::certs::{self, CertParams, Role, Sm2KeyPair};
//! use rustls::{ClientConfig, RootCertStore, ServerConfig, sign::CertifiedKey};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let now = SystemTime::now();
//! let params = |subject: &str, role| CertParams {
//!     subject: subject.into(),
//!     dns_names: vec!["hsm.example".into()],
//!     ip_addresses: vec![],
//!     not_before: now,
//!     not_after: now + Duration::from_secs(365 * 86_400),
//!     role,
//! };
//! let ca_key = Sm2KeyPair::generate()?;
//! let ca = certs::self_signed(&params("CN=gmhsm CA", Role::Ca), &ca_key)?;
//! let sm_key = Sm2KeyPair::generate()?;
//! let sm_cert = certs::issue(&params("CN=hsm.example", Role::Server), &sm_key, &ca, &ca_key)?;
//! # let standard_chain = vec![sm_cert.der()];
//! # let standard_key = sm_key.expose_secret_pkcs8_der()?;
//!
//! // Server: both certificates, chosen per client; client certificates verified with the
//! // SM provider's algorithms (SM2 and standard chains alike).
//! let provider = Arc::new(gmhsm_tls_sm::provider());
//! let mut roots = RootCertStore::empty();
//! roots.add(ca.der())?;
//! let roots = Arc::new(roots);
//! let sm = CertifiedKey::new(
//!     vec![sm_cert.der()],
//!     gmhsm_tls_sm::sm2_signing_key(&sm_key.expose_secret_pkcs8_der()?)?,
//! );
//! let standard = CertifiedKey::new(
//!     standard_chain,
//!     provider.key_provider.load_private_key(standard_key)?,
//! );
//! let resolver = gmhsm_tls_sm::SmOrStandardResolver::new(Arc::new(sm), Arc::new(standard))
//!     .ok_or("not an SM2 key")?;
//! let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
//!     Arc::clone(&roots),
//!     Arc::clone(&provider),
//! )
//! .build()?;
//! let _server = ServerConfig::builder_with_provider(Arc::clone(&provider))
//!     .with_protocol_versions(&[&rustls::version::TLS13])?
//!     .with_client_cert_verifier(verifier)
//!     .with_cert_resolver(Arc::new(resolver));
//!
//! // Client: the same provider (or `sm_only_provider()` for the strict profile); an SM2
//! // client certificate loads through the provider's key provider.
//! let _client = ClientConfig::builder_with_provider(provider)
//!     .with_protocol_versions(&[&rustls::version::TLS13])?
//!     .with_root_certificates(roots)
//!     .with_client_auth_cert(vec![sm_cert.der()], sm_key.expose_secret_pkcs8_der()?)?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod aead;
pub mod certs;
pub mod hash;
pub mod kx;
pub mod resolve;
pub mod sign;
pub mod verify;

use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::{CipherSuite, CipherSuiteCommon, SupportedCipherSuite, Tls13CipherSuite};

pub use kx::{CURVE_SM2, CURVE_SM2_GROUP};
pub use resolve::SmOrStandardResolver;
pub use sign::{CERT_DISTID, SM2SIG_SM3, Sm2SigningKey, TLS13_DISTID, sm2_signing_key};
pub use verify::supported_sig_algs;

/// `TLS_SM4_GCM_SM3` in the TLS cipher-suite registry (RFC 8998 §3.1).
pub const TLS_SM4_GCM_SM3_ID: CipherSuite = CipherSuite::Unknown(0x00C6);

/// The TLS 1.3 cipher suite `TLS_SM4_GCM_SM3` (0x00C6): SM4-GCM records, SM3 transcript
/// hash, HKDF over HMAC-SM3. Not offered for QUIC.
pub static TLS13_SM4_GCM_SM3: SupportedCipherSuite = SupportedCipherSuite::Tls13(&Tls13CipherSuite {
    common: CipherSuiteCommon {
        suite: TLS_SM4_GCM_SM3_ID,
        hash_provider: &hash::SM3,
        // SM4 has a 128-bit block like AES, so the AES-GCM record limit applies
        // (2^24.5 full records, draft-irtf-cfrg-aead-limits); rustls then rekeys.
        confidentiality_limit: 1 << 24,
    },
    hkdf_provider: &hash::HKDF_SM3,
    aead_alg: &aead::SM4_GCM,
    quic: None,
});

/// The provider for the private link: `TLS_SM4_GCM_SM3` with `curveSM2` first, then ring's
/// TLS 1.3 suites (AES-256-GCM, AES-128-GCM, ChaCha20-Poly1305) and groups (X25519,
/// P-256, P-384); signature verification is ring's plus SM2 ([`supported_sig_algs`]); the key
/// provider loads SM2 PKCS#8 keys and hands every other key to ring. TLS 1.2 suites are left
/// out: the link is TLS 1.3 only, and SM2 exists only in TLS 1.3.
pub fn provider() -> CryptoProvider {
    let ring = rustls::crypto::ring::default_provider();
    let mut cipher_suites = vec![TLS13_SM4_GCM_SM3];
    cipher_suites.extend(ring.cipher_suites.iter().filter(|suite| suite.tls13().is_some()).copied());
    let mut kx_groups: Vec<&'static dyn SupportedKxGroup> = vec![&CURVE_SM2];
    kx_groups.extend(ring.kx_groups.iter().copied());
    CryptoProvider {
        cipher_suites,
        kx_groups,
        signature_verification_algorithms: supported_sig_algs(),
        secure_random: ring.secure_random,
        key_provider: &sign::SM_KEY_PROVIDER,
    }
}

/// The strict RFC 8998 profile: only `TLS_SM4_GCM_SM3`, only `curveSM2`. Signature
/// verification and key loading are those of [`provider`], so certificate chains may still
/// be verified with any algorithm; restrict the client's or server's own certificate to SM2 to
/// get `sm2sig_sm3` end to end.
pub fn sm_only_provider() -> CryptoProvider {
    CryptoProvider { cipher_suites: vec![TLS13_SM4_GCM_SM3], kx_groups: vec![&CURVE_SM2], ..provider() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_orders_sm_first_and_is_tls13_only() {
        let p = provider();
        assert_eq!(p.cipher_suites[0].suite(), TLS_SM4_GCM_SM3_ID);
        assert_eq!(u16::from(p.cipher_suites[0].suite()), 0x00C6);
        assert!(p.cipher_suites.iter().all(|s| s.tls13().is_some()));
        assert!(p.cipher_suites.iter().any(|s| s.suite() == CipherSuite::TLS13_AES_128_GCM_SHA256));
        assert_eq!(p.kx_groups[0].name(), CURVE_SM2_GROUP);
        assert_eq!(u16::from(CURVE_SM2_GROUP), 41);
        assert!(p.kx_groups.iter().any(|g| g.name() == rustls::NamedGroup::X25519));
        let strict = sm_only_provider();
        assert_eq!(strict.cipher_suites.len(), 1);
        assert_eq!(strict.kx_groups.len(), 1);
    }
}
