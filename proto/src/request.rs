//! Requests: what a client (through the daemon) asks the crypto card to do.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::admin::{CardKey, CardRole, CardSignature, QuorumPolicy, Serial, ShareBlob};
use crate::mech::{Capabilities, CipherMech, HashAlg, MacMech};
use crate::secret::{Password, PinBlock};

/// A key label: 1 to 64 bytes of UTF-8, unique per device.
pub type Label = heapless::String<64>;

mod batch;
mod keys;
mod principal;
#[cfg(test)]
mod tests;

pub use batch::{MAX_DECRYPT_BATCH, MAX_SIGN_BATCH, MAX_SIGN_BATCH_RSA};
use batch::{bounded_ciphertexts, bounded_messages};
pub use keys::{KeyAlg, KeyPairProtection, KeyRef, Mechanism, MultiOp, WrapWith};
pub use principal::{AppQuota, Principal};

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
