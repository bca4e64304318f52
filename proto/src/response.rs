//! Responses: what the card (through the daemon) answers.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::admin::{AdminStatus, CardKey, CardSignature, ShareBlob};
use crate::audit::{AuditCheckpoint, AuditRecord, AuditState};
use crate::mech::Capabilities;
use crate::request::{KeyAlg, Label, Principal};

/// The card's state as reported by [`crate::Request::GetStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusInfo {
    /// `true` once the device left the factory state.
    pub initialized: bool,
    /// `None` when operational; otherwise why the card refuses cryptographic requests.
    pub error: Option<heapless::String<96>>,
    /// Number of stored keys.
    pub keys: u32,
    /// Boot counter of the card.
    pub boots: u32,
    /// The audit log's extent and integrity.
    pub audit: AuditState,
    /// `true` while the service is stopped (`Request::ServiceStop`): applications are refused.
    pub service_stopped: bool,
    /// Card sessions open now (connections the card has seen and not yet closed).
    pub sessions: u32,
    /// Requests the card has handled since it booted, whatever their outcome.
    pub requests: u64,
}

/// One successful answer. Append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Response {
    Pong,
    Status(StatusInfo),
    /// The key was generated; its public key as DER SubjectPublicKeyInfo.
    KeyGenerated {
        alg: KeyAlg,
        #[serde(with = "serde_bytes")]
        spki_der: Vec<u8>,
    },
    PublicKey {
        alg: KeyAlg,
        #[serde(with = "serde_bytes")]
        spki_der: Vec<u8>,
    },
    Signature(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The signature verified.
    Verified,
    Deleted,
    Keys(Vec<(Label, KeyAlg)>),
    /// Audit records in sequence order.
    Audit(Vec<AuditRecord>),
    Random(#[serde(with = "serde_bytes")] Vec<u8>),
    Digest(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Output bytes (ciphertext, plaintext, MAC, multi-part output). Zeroed on drop and shown
    /// by `Debug` as its length only, whatever it carries, since it may be a plaintext (the
    /// same bytes on the wire as a plain byte string).
    Data(SecretBytes),
    /// A multi-part operation's handle.
    Handle(u32),
    /// A session key: its handle in this session and, when generated, its wrapped form.
    SessionKey {
        handle: u32,
        #[serde(with = "serde_bytes")]
        wrapped: Vec<u8>,
    },
    /// Initiator's ephemeral public key (65-byte SEC1) and the pending exchange's handle.
    Agreement {
        handle: u32,
        #[serde(with = "serde_bytes")]
        ephemeral: Vec<u8>,
    },
    /// Responder's answer: the derived session key's handle, its ephemeral public key and
    /// S_B for the initiator to check.
    AgreementReply {
        key_handle: u32,
        #[serde(with = "serde_bytes")]
        ephemeral: Vec<u8>,
        confirm: [u8; 32],
    },
    KeyInfo(KeyInfo),
    Done,
    /// A login nonce (see `Request::AdminChallenge`).
    AdminNonce([u8; 32]),
    AdminState(AdminStatus),
    /// The card's share x-coordinate (0 for operator / auditor cards) and the domain public
    /// key to bind on it.
    CardEnrolled {
        x: u8,
        domain_key: CardKey,
    },
    /// A share blob for an admin card and the domain authorization to store it.
    CardShare {
        blob: ShareBlob,
        authorization: CardSignature,
    },
    DomainAuthorization(CardSignature),
    /// A key pair made by `Request::GenerateKeyPair`: the public key as DER
    /// SubjectPublicKeyInfo and the private key as the request asked.
    KeyPair {
        alg: KeyAlg,
        #[serde(with = "serde_bytes")]
        spki_der: Vec<u8>,
        private: PrivateKeyOut,
    },
    /// The key-export policy: may generated private keys leave the card in the clear?
    KeyExportPolicy {
        allow_plaintext: bool,
    },
    /// The signatures of a `Request::SignBatch`, in the order of its messages.
    Signatures(Vec<serde_bytes::ByteBuf>),
    /// The plaintexts of a `Request::DecryptBatch`, in the order of its ciphertexts; `None`
    /// for a ciphertext that did not decrypt. Secret: zeroed on drop, hidden from `Debug`
    /// (the same bytes on the wire as a plain byte string).
    Plaintexts(Vec<Option<SecretBytes>>),
    /// A signed checkpoint of the audit log (`Request::AuditCheckpoint`).
    AuditCheckpoint(AuditCheckpoint),
}

/// The private half of a generated key pair. Append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PrivateKeyOut {
    /// `nonce (12) ‖ SM4-GCM ciphertext ‖ tag (16)` under the KEK, AAD = the SPKI DER; the
    /// plaintext is the PKCS#8 DER private key (`docs/protocol.md`, §Generated key pairs).
    Wrapped(#[serde(with = "serde_bytes")] Vec<u8>),
    /// PKCS#8 DER in the clear (only when the key-export policy allows it).
    Plaintext(SecretBytes),
}

/// Secret bytes (a private key) on their way through the wire types: overwritten with zeros
/// when dropped, shown as their length only by `Debug`, compared without an early exit. The
/// bytes are reached only through [`SecretBytes::expose_secret`].
///
/// Zeroed by the `zeroize` crate (volatile writes over the whole allocation, spare capacity
/// included); copies made while (de)serializing are the caller's to avoid: move the bytes
/// into a zeroizing type at once.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretBytes(#[serde(with = "serde_bytes")] Vec<u8>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(bytes)
    }

    /// The secret itself.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl core::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SecretBytes({} bytes)", self.0.len())
    }
}

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        crate::secret::ct_eq(&self.0, &other.0)
    }
}

impl Eq for SecretBytes {}

/// Attributes of a stored key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub alg: KeyAlg,
    pub caps: Capabilities,
    pub domains: u32,
    pub owner: Principal,
    /// DER SubjectPublicKeyInfo (empty for symmetric keys).
    #[serde(with = "serde_bytes")]
    pub spki_der: Vec<u8>,
    /// `true` when the key has a private-key access password.
    pub password: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn appended_responses_keep_their_indices() {
        let wrapped = Response::KeyPair {
            alg: KeyAlg::Sm2,
            spki_der: alloc::vec![1],
            private: PrivateKeyOut::Wrapped(alloc::vec![2]),
        };
        assert_eq!(postcard::to_allocvec(&wrapped).unwrap(), [23, 0, 1, 1, 0, 1, 2]);
        let plain = Response::KeyPair {
            alg: KeyAlg::Sm2,
            spki_der: alloc::vec![],
            private: PrivateKeyOut::Plaintext(SecretBytes::new(alloc::vec![9, 9])),
        };
        assert_eq!(postcard::to_allocvec(&plain).unwrap(), [23, 0, 0, 1, 2, 9, 9]);
        let policy = Response::KeyExportPolicy { allow_plaintext: true };
        assert_eq!(postcard::to_allocvec(&policy).unwrap(), [24, 1]);
        // A sequence of byte strings: count, then each length-prefixed.
        let sigs = Response::Signatures(alloc::vec![
            serde_bytes::ByteBuf::from(alloc::vec![1, 2]),
            serde_bytes::ByteBuf::from(alloc::vec![3]),
        ]);
        assert_eq!(postcard::to_allocvec(&sigs).unwrap(), [25, 2, 2, 1, 2, 1, 3]);
        // Each an option: 0 for none, 1 and the bytes.
        let plain = Response::Plaintexts(alloc::vec![Some(SecretBytes::new(alloc::vec![7])), None]);
        assert_eq!(postcard::to_allocvec(&plain).unwrap(), [26, 2, 1, 1, 7, 0]);
    }

    /// Guards finding 9: a `Data` answer (a decrypted plaintext among others) never shows its
    /// bytes in `Debug`, and keeps the wire form of a plain byte string.
    #[test]
    fn data_hides_plaintext_and_keeps_its_wire_form() {
        let d = Response::Data(SecretBytes::new(b"attack at dawn".to_vec()));
        let shown = format!("{d:?}");
        assert!(!shown.contains("attack") && !shown.contains("97, 116"), "{shown}");
        let bytes = postcard::to_allocvec(&d).unwrap();
        let mut plain = postcard::to_allocvec(&Response::Digest(b"attack at dawn".to_vec())).unwrap();
        plain[0] = bytes[0];
        assert_eq!(bytes, plain);
        assert_eq!(postcard::from_bytes::<Response>(&bytes).unwrap(), d);
    }

    #[test]
    fn secret_bytes_hide_themselves() {
        let s = SecretBytes::new(alloc::vec![0x41; 5]);
        assert_eq!(format!("{s:?}"), "SecretBytes(5 bytes)");
        assert_eq!(s, SecretBytes::new(alloc::vec![0x41; 5]));
        assert_ne!(s, SecretBytes::new(alloc::vec![0x41; 4]));
        assert_ne!(s, SecretBytes::new(alloc::vec![0x41, 0x41, 0x41, 0x41, 0x42]));
        let back: SecretBytes = postcard::from_bytes(&postcard::to_allocvec(&s).unwrap()).unwrap();
        assert_eq!(back.expose_secret(), &[0x41; 5]);
    }
}
