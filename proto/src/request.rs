//! Requests: what a client (through the daemon) asks the crypto card to do.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::admin::{CardKey, CardRole, CardSignature, QuorumPolicy, Serial, ShareBlob};
use crate::mech::{Capabilities, CipherMech, HashAlg, MacMech};
use crate::secret::{Password, PinBlock};

/// A key label: 1 to 64 bytes of UTF-8, unique per device.
pub type Label = heapless::String<64>;

/// Who is asking. The daemon sets this from the authenticated TLS client certificate; a
/// client can never choose it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Principal {
    /// An application server, named by the SHA-256 fingerprint of its client certificate.
    Application { cert_sha256: [u8; 32] },
    /// A tool on the appliance itself (local socket).
    Local,
}

/// What one application may own in the card's store: stored keys, and bytes of flash those
/// key records take (as the store counts them: key, value and record framing). Set at
/// registration; keys of the local principal (the appliance's own) are not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppQuota {
    pub max_keys: u32,
    pub max_bytes: u32,
}

impl AppQuota {
    /// The quota of an application registered without one, and of an unregistered
    /// application: 1024 keys, 1 MiB of records.
    pub const DEFAULT: AppQuota = AppQuota { max_keys: 1024, max_bytes: 1 << 20 };

    /// The quota a tool's `--max-keys` / `--max-bytes` options ask for: `None` when neither
    /// is given (the card's default), else the default with what is given.
    pub fn from_options(max_keys: Option<u32>, max_bytes: Option<u32>) -> Option<AppQuota> {
        (max_keys.is_some() || max_bytes.is_some()).then(|| AppQuota {
            max_keys: max_keys.unwrap_or(Self::DEFAULT.max_keys),
            max_bytes: max_bytes.unwrap_or(Self::DEFAULT.max_bytes),
        })
    }
}

/// Key algorithms the card can generate. Append-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum KeyAlg {
    /// SM2 key pair on the GB/T 32918 curve.
    Sm2,
    /// RSA with a 2048-bit modulus, e = 65537.
    Rsa2048,
    Rsa3072,
    Rsa4096,
    /// ECDSA on NIST P-256.
    EcdsaP256,
    /// A 128-bit SM4 key (KEK, data key).
    Sm4,
    /// A 256-bit HMAC-SM3 key.
    HmacSm3,
}

impl KeyAlg {
    /// `true` for key pairs (which have a public key to export).
    pub fn is_asymmetric(self) -> bool {
        matches!(self, KeyAlg::Sm2 | KeyAlg::Rsa2048 | KeyAlg::Rsa3072 | KeyAlg::Rsa4096 | KeyAlg::EcdsaP256)
    }
}

/// Signature mechanisms. Append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Mechanism {
    /// SM2 signature over SM3(Z ‖ M), Z from the distinguishing ID; DER signature
    /// (`SEQUENCE { r, s }`).
    Sm2Sm3 { distid: heapless::Vec<u8, 128> },
    /// RSASSA-PKCS1-v1_5 with SHA-256 over the message.
    RsaPkcs1v15Sha256,
    /// SM2 signature over a precomputed 32-byte digest e = SM3(Z ‖ M).
    Sm2Digest,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt.
    RsaPssSha256,
    /// ECDSA P-256 with SHA-256 over the message; DER signature.
    EcdsaP256Sha256,
}

impl Mechanism {
    /// SM2 with SM3 and the default distinguishing ID `1234567812345678`.
    pub fn sm2_default() -> Self {
        let mut distid = heapless::Vec::new();
        // The default ID is 16 bytes, far below the bound of 128.
        let _ = distid.extend_from_slice(crate::SM2_DEFAULT_ID);
        Mechanism::Sm2Sm3 { distid }
    }
}

/// A key a symmetric operation uses: stored under a label, or a session key handle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyRef {
    Label(Label),
    Session(u32),
}

/// Where a new session key goes, wrapped. Append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum WrapWith {
    /// Under a stored key (public-key encryption or SM4) that has the WRAP capability.
    Key { label: Label, mechanism: CipherMech },
    /// Under an external public key (DER SubjectPublicKeyInfo), e.g. a client's certificate.
    External {
        #[serde(with = "serde_bytes")]
        spki_der: Vec<u8>,
        mechanism: CipherMech,
    },
}

/// How the private key of a pair made by [`Request::GenerateKeyPair`] leaves the card.
/// Append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum KeyPairProtection {
    /// Wrapped under the stored SM4 key `kek`, which the caller may use with the WRAP
    /// capability: SM4-GCM over the PKCS#8 DER private key, the SPKI as associated data
    /// (layout in `docs/protocol.md`, §Generated key pairs).
    Wrapped { kek: Label },
    /// In the clear (PKCS#8 DER). Refused with `AccessDenied` unless the card's key-export
    /// policy allows it ([`Request::KeyExportPolicy`]; off by default).
    Plaintext,
}

/// A multi-part operation started with [`Request::OpInit`]. Append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MultiOp {
    Hash {
        alg: HashAlg,
    },
    /// SM3 prefixed with Z computed from the public key (DER SPKI) and ID (SDF_HashInit with
    /// a public key): the result is the e an SM2 signature over the data signs.
    HashSm2 {
        #[serde(with = "serde_bytes")]
        spki_der: Vec<u8>,
        distid: heapless::Vec<u8, 128>,
    },
    Encrypt {
        key: KeyRef,
        mechanism: CipherMech,
    },
    Decrypt {
        key: KeyRef,
        mechanism: CipherMech,
    },
    Mac {
        key: KeyRef,
        mechanism: MacMech,
    },
}

/// One request. Append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Request {
    /// Liveness check; answered with [`crate::Response::Pong`].
    Ping,
    /// The card's state and counters.
    GetStatus,
    /// Generate a key inside the card and store it under `label`. `caps` DEFAULT means the
    /// algorithm's natural capabilities; `domains` (a bit set) lets applications registered
    /// in those domains use the key besides its owner.
    GenerateKey {
        label: Label,
        alg: KeyAlg,
        caps: Capabilities,
        domains: u32,
    },
    /// The public key of `label` as DER SubjectPublicKeyInfo.
    ExportPublicKey {
        label: Label,
    },
    /// Sign `message` with the private key of `label`.
    Sign {
        label: Label,
        mechanism: Mechanism,
        #[serde(with = "serde_bytes")]
        message: Vec<u8>,
    },
    /// Verify `signature` over `message` with the public key of `label`.
    Verify {
        label: Label,
        mechanism: Mechanism,
        #[serde(with = "serde_bytes")]
        message: Vec<u8>,
        #[serde(with = "serde_bytes")]
        signature: Vec<u8>,
    },
    /// Delete the key `label`.
    DeleteKey {
        label: Label,
    },
    /// List the labels visible to the caller.
    ListKeys,
    /// Read up to `max` audit records starting at `from_seq` (auditors and local tools only).
    ReadAudit {
        from_seq: u64,
        max: u16,
    },
    /// `len` (≤ 65536) bytes from the card's DRBG.
    GenerateRandom {
        len: u32,
    },
    /// One-shot digest.
    Hash {
        alg: HashAlg,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    Encrypt {
        key: KeyRef,
        mechanism: CipherMech,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    Decrypt {
        key: KeyRef,
        mechanism: CipherMech,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    Mac {
        key: KeyRef,
        mechanism: MacMech,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Answered `Verified` or `Err(SignatureInvalid)`; compared in constant time.
    VerifyMac {
        key: KeyRef,
        mechanism: MacMech,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        #[serde(with = "serde_bytes")]
        mac: Vec<u8>,
    },
    /// Start a multi-part operation kept in this session; answered `Handle`.
    OpInit {
        op: MultiOp,
    },
    /// Feed data; answered `Data` with the output produced so far.
    OpUpdate {
        handle: u32,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Feed the last data and finish; answered `Data` (digest, MAC, last output).
    OpFinal {
        handle: u32,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// A fresh SM4 session key, kept in this session and returned wrapped (digital envelope).
    GenerateSessionKey {
        wrap: WrapWith,
    },
    /// Unwrap a client's envelope with a stored private or SM4 key into a session key.
    ImportSessionKey {
        unwrap_with: Label,
        mechanism: CipherMech,
        #[serde(with = "serde_bytes")]
        wrapped: Vec<u8>,
    },
    DestroySessionKey {
        handle: u32,
    },
    /// SM2 key exchange, initiator step 1 (GB/T 32918.3 A1–A3) with the stored key `label`.
    AgreementInit {
        label: Label,
        own_id: heapless::Vec<u8, 128>,
        key_len: u16,
    },
    /// SM2 key exchange, responder (B1–B9): derives the session key at once.
    AgreementRespond {
        label: Label,
        own_id: heapless::Vec<u8, 128>,
        peer_id: heapless::Vec<u8, 128>,
        #[serde(with = "serde_bytes")]
        peer_public: Vec<u8>,
        #[serde(with = "serde_bytes")]
        peer_ephemeral: Vec<u8>,
        key_len: u16,
    },
    /// SM2 key exchange, initiator step 2 (A4–A10).
    AgreementFinish {
        handle: u32,
        peer_id: heapless::Vec<u8, 128>,
        #[serde(with = "serde_bytes")]
        peer_public: Vec<u8>,
        #[serde(with = "serde_bytes")]
        peer_ephemeral: Vec<u8>,
    },
    /// Run every known-answer test now; answered `Status`.
    SelfTest,
    /// Attributes of a key the caller may use.
    GetKeyInfo {
        label: Label,
    },
    /// Set (or change) the private-key access password of `label` (owner or local tools).
    SetKeyPassword {
        label: Label,
        password: Password,
    },
    /// Prove the access password of `label` for this session (SDF_GetPrivateKeyAccessRight).
    AuthorizeKey {
        label: Label,
        password: Password,
    },
    /// Sent by the daemon when a connection ends: the card drops its session state.
    CloseSession,
    /// Register an application: who may use keys of which domains, and how many keys and
    /// bytes of the card's store it may own (`None`: [`AppQuota::DEFAULT`]); local tools only.
    RegisterApplication {
        cert_sha256: [u8; 32],
        name: heapless::String<64>,
        domains: u32,
        caps: Capabilities,
        quota: Option<AppQuota>,
    },
    /// Import an SM2 encryption key pair delivered as a GM/T 0016 `ENVELOPEDKEYBLOB`, its SM4
    /// key wrapped to the stored SM2 key `unwrap_with`; stored under `label`. Answered
    /// `KeyGenerated` with the imported public key.
    ImportEnvelopedKeyPair {
        label: Label,
        unwrap_with: Label,
        #[serde(with = "serde_bytes")]
        blob: Vec<u8>,
        caps: Capabilities,
        domains: u32,
    },
    /// A fresh login nonce for this session (single use: the next `AdminLogin` or
    /// `CeremonyVerify` of this session consumes it). Answered `AdminNonce`.
    AdminChallenge,
    /// One card's login: its signature over `auth_message(serial, nonce)` and, for an
    /// administrator card, its share blob. Answered `AdminState`.
    AdminLogin {
        serial: Serial,
        signature: CardSignature,
        share: ShareBlob,
    },
    /// Withdraw one card's contribution (`Some`: that card was removed) or every card's.
    AdminLogout {
        serial: Option<Serial>,
    },
    /// This session's administration state. Answered `AdminState`.
    AdminStatus,
    /// Init ceremony, step 1 (factory state only): the policy; the card draws DMK and DK.
    InitBegin {
        policy: QuorumPolicy,
    },
    /// Card-set replacement, step 1 (quorum authority): re-split DK k-of-n, next epoch.
    ReplaceBegin {
        n: u8,
        k: u8,
    },
    /// Enrol a card (its key born on the card) in the running ceremony. Answered
    /// `CardEnrolled` with its x and the domain key to bind on the card.
    CeremonyEnroll {
        serial: Serial,
        role: CardRole,
        public_key: CardKey,
    },
    /// The enrolled administrator card's share blob and the domain authorization for PUT
    /// DATA `D0` over the card's fresh GET CHALLENGE. Answered `CardShare`.
    CeremonyShare {
        serial: Serial,
        card_challenge: [u8; 16],
    },
    /// Prove an enrolled card: signature over the session nonce and the share read back.
    CeremonyVerify {
        serial: Serial,
        signature: CardSignature,
        share: ShareBlob,
    },
    /// Finish the running ceremony (every card verified).
    CeremonyCommit,
    /// Abandon the running ceremony; nothing it prepared is kept.
    CeremonyAbort,
    /// Domain authorization for RESET RETRY COUNTER on one card (unblock quorum). Answered
    /// `DomainAuthorization`.
    AuthorizeUnblock {
        serial: Serial,
        card_challenge: [u8; 16],
        new_pin_block: PinBlock,
    },
    /// Replace the policy's thresholds, retry limit and timeout (n and k must not change).
    SetPolicy {
        policy: QuorumPolicy,
    },
    /// Remove an application's registration.
    RevokeApplication {
        cert_sha256: [u8; 32],
    },
    /// Wipe DMK and DK: every stored key becomes unreadable; the card returns to factory.
    Zeroize,
    /// Stop the service (key-management quorum authority on a ceremony-initialized device):
    /// from now on, and across reboots, applications get [`crate::Status::ServiceStopped`]
    /// for everything but `Ping` and `GetStatus`; local tools keep working.
    ServiceStop,
    /// Start the service again after [`Request::ServiceStop`] (same authority).
    ServiceStart,
    /// A fresh asymmetric key pair for the caller (GM/T 0018 `SDF_GenerateKeyPair_ECC`): not
    /// stored in the card; the public key and the private key, protected as `protection`
    /// says, go back in [`crate::Response::KeyPair`].
    GenerateKeyPair {
        alg: KeyAlg,
        protection: KeyPairProtection,
    },
    /// Read (`set: None`, local tools) or change (`Some`, local tools with the policy-change
    /// quorum's authority on a ceremony-initialized device) whether generated private keys may
    /// leave the card in the clear. Answered [`crate::Response::KeyExportPolicy`].
    KeyExportPolicy {
        set: Option<bool>,
    },
    /// Sign each of `messages` with the stored key `label` and `mechanism`, as that many
    /// [`Request::Sign`]s would, in one request: answered [`crate::Response::Signatures`] in the
    /// same order. All or nothing: when one message is refused (a digest of the wrong length)
    /// nothing is signed. 1 to [`MAX_SIGN_BATCH`] messages.
    SignBatch {
        label: Label,
        mechanism: Mechanism,
        /// More than [`MAX_SIGN_BATCH`] do not decode: the bound holds before anything is
        /// allocated for them.
        #[serde(deserialize_with = "bounded_messages")]
        messages: Vec<serde_bytes::ByteBuf>,
    },
    /// Decrypt each of `ciphertexts` with the stored key `label` and `mechanism` (an SM2 key and
    /// [`CipherMech::Sm2`]), as that many [`Request::Decrypt`]s would, in one request: answered
    /// [`crate::Response::Plaintexts`] in the same order, `None` where a ciphertext does not
    /// decrypt (every such failure looks alike, as `DecryptFailed` does for one). The card
    /// computes the batch's \[dB\]C1 eight at a time where it can. 1 to [`MAX_DECRYPT_BATCH`]
    /// ciphertexts.
    DecryptBatch {
        label: Label,
        mechanism: CipherMech,
        /// More than [`MAX_DECRYPT_BATCH`] do not decode.
        #[serde(deserialize_with = "bounded_ciphertexts")]
        ciphertexts: Vec<serde_bytes::ByteBuf>,
    },
    /// A tool on the appliance asks for administrative authority for its own session: the
    /// card draws a 4-digit code (answered in [`crate::Response::AdminState`], `approval`),
    /// which the front panel shows to the people holding the authority for their approval.
    AdminRequestApproval,
    /// From a session holding a quorum's authority or an operator / auditor login of its own:
    /// approve (or refuse) the session waiting with `code`. An approved session acts under the
    /// approver's authority or role until that ends. Answered `AdminState`.
    AdminApprove {
        code: u16,
        approve: bool,
    },
    /// Register an auditor's certificate (local tools under the key-management quorum): it
    /// may read the audit trail over the private link and nothing else.
    RegisterAuditor {
        cert_sha256: [u8; 32],
        name: heapless::String<64>,
    },
    /// A checkpoint of the audit log: the card's SM2 signature (its audit key `audit:sign`)
    /// over the hash of record `seq` ([`crate::audit::checkpoint_message`]), which commits to
    /// every record before it through their `prev_hash` chain. Refused while the log has a
    /// chain break or the record is not held. Same access as `ReadAudit`. Answered
    /// `AuditCheckpoint`.
    AuditCheckpoint {
        seq: u64,
    },
}

/// Most ciphertexts in one [`Request::DecryptBatch`] (each decryption is a variable-base
/// multiplication: 32 hold the card for about a millisecond with AVX-512 IFMA, two without).
pub const MAX_DECRYPT_BATCH: usize = 32;

/// Most messages in one [`Request::SignBatch`]: the card executes requests one at a time, and
/// a batch of 256 SM2 or ECDSA signatures holds it for about a millisecond.
pub const MAX_SIGN_BATCH: usize = 256;

/// Most messages in a [`Request::SignBatch`] with an RSA key (an RSA-4096 signature costs the
/// card milliseconds).
pub const MAX_SIGN_BATCH_RSA: usize = 16;

/// A `SignBatch`'s messages, refused past [`MAX_SIGN_BATCH`] from the announced count (postcard
/// gives it before the elements) and again while reading: a hostile frame of a million empty
/// messages costs a failed decode, not a million-entry vector.
fn bounded_messages<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<serde_bytes::ByteBuf>, D::Error> {
    d.deserialize_seq(Bounded(MAX_SIGN_BATCH))
}

/// A `DecryptBatch`'s ciphertexts, bounded as [`bounded_messages`] bounds messages.
fn bounded_ciphertexts<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<serde_bytes::ByteBuf>, D::Error> {
    d.deserialize_seq(Bounded(MAX_DECRYPT_BATCH))
}

/// A sequence of byte strings of at most `.0` elements.
struct Bounded(usize);

impl<'de> serde::de::Visitor<'de> for Bounded {
    type Value = Vec<serde_bytes::ByteBuf>;
    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "at most {} byte strings", self.0)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let announced = seq.size_hint().unwrap_or(0);
        if announced > self.0 {
            return Err(serde::de::Error::invalid_length(announced, &self));
        }
        let mut items = Vec::with_capacity(announced);
        while let Some(m) = seq.next_element()? {
            if items.len() == self.0 {
                return Err(serde::de::Error::invalid_length(self.0 + 1, &self));
            }
            items.push(m);
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire index of a request is its postcard variant index: pinned for the requests
    /// appended last, so that a reordering fails here before it breaks deployed clients.
    #[test]
    fn appended_requests_keep_their_indices() {
        let kek = Label::try_from("kek").unwrap();
        let cases = [
            (Request::ServiceStart, 47u8),
            (Request::GenerateKeyPair { alg: KeyAlg::Sm2, protection: KeyPairProtection::Wrapped { kek } }, 48),
            (Request::KeyExportPolicy { set: None }, 49),
            (
                Request::SignBatch {
                    label: Label::try_from("k").unwrap(),
                    mechanism: Mechanism::Sm2Digest,
                    messages: alloc::vec![],
                },
                50,
            ),
            (
                Request::DecryptBatch {
                    label: Label::try_from("k").unwrap(),
                    mechanism: CipherMech::Sm2 { layout: crate::Sm2Layout::C1C3C2 },
                    ciphertexts: alloc::vec![],
                },
                51,
            ),
        ];
        for (r, index) in cases {
            assert_eq!(postcard::to_allocvec(&r).unwrap()[0], index, "{r:?}");
        }
        let plain = Request::GenerateKeyPair { alg: KeyAlg::EcdsaP256, protection: KeyPairProtection::Plaintext };
        assert_eq!(postcard::to_allocvec(&plain).unwrap(), [48, 4, 1]);
    }

    /// A `SignBatch` decodes up to the bound and not past it, whatever the messages' sizes.
    #[test]
    fn sign_batches_past_the_bound_do_not_decode() {
        let batch = |n: usize| Request::SignBatch {
            label: Label::try_from("k").unwrap(),
            mechanism: Mechanism::Sm2Digest,
            messages: alloc::vec![serde_bytes::ByteBuf::new(); n],
        };
        for n in [0, 1, MAX_SIGN_BATCH] {
            let bytes = postcard::to_allocvec(&batch(n)).unwrap();
            assert_eq!(postcard::from_bytes::<Request>(&bytes).unwrap(), batch(n));
        }
        for n in [MAX_SIGN_BATCH + 1, 1 << 20] {
            let bytes = postcard::to_allocvec(&batch(n)).unwrap();
            assert!(postcard::from_bytes::<Request>(&bytes).is_err(), "{n} messages decoded");
        }
        let batch = |n: usize| Request::DecryptBatch {
            label: Label::try_from("k").unwrap(),
            mechanism: CipherMech::Sm2 { layout: crate::Sm2Layout::Der },
            ciphertexts: alloc::vec![serde_bytes::ByteBuf::from(alloc::vec![1u8; 3]); n],
        };
        for n in [0, 1, MAX_DECRYPT_BATCH] {
            let bytes = postcard::to_allocvec(&batch(n)).unwrap();
            assert_eq!(postcard::from_bytes::<Request>(&bytes).unwrap(), batch(n));
        }
        for n in [MAX_DECRYPT_BATCH + 1, 4096] {
            let bytes = postcard::to_allocvec(&batch(n)).unwrap();
            assert!(postcard::from_bytes::<Request>(&bytes).is_err(), "{n} ciphertexts decoded");
        }
    }

    /// Byte fields go through `serde_bytes` (one copy instead of one serde call per byte) and
    /// keep postcard's sequence encoding: a varint length, then the bytes. The same value
    /// encoded as a plain `Vec<u8>` sequence decodes to the same request.
    #[test]
    fn byte_fields_keep_the_sequence_encoding() {
        #[derive(Serialize)]
        struct AsSeq {
            variant: u8,
            alg: u8,
            data: Vec<u8>,
        }
        let data: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let req = Request::Hash { alg: HashAlg::Sm3, data: data.clone() };
        let bytes = postcard::to_allocvec(&req).unwrap();
        let index = bytes[0];
        let seq = postcard::to_allocvec(&AsSeq { variant: index, alg: bytes[1], data: data.clone() }).unwrap();
        assert_eq!(bytes, seq);
        assert_eq!(&bytes[2..4], [0xac, 0x02], "varint 300");
        assert_eq!(postcard::from_bytes::<Request>(&seq).unwrap(), req);
        // A length beyond the input is an error, not a panic or a short read.
        let mut truncated = seq.clone();
        truncated.truncate(100);
        assert!(postcard::from_bytes::<Request>(&truncated).is_err());
    }
}
