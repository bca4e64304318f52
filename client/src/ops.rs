//! One method per request of the protocol, over [`Client::call`]: typed arguments in, typed
//! answers out, every argument checked against its wire bound before anything is sent.

use gmhsm_proto::secret::MAX_PASSWORD;
use gmhsm_proto::{
    AuditRecord, Capabilities, CipherMech, HashAlg, KeyAlg, KeyInfo, KeyRef, MacMech, MultiOp, Password, Request,
    Response, SecretBytes, Status, WrapWith,
};

use crate::client::{check_batch, unexpected};
use crate::{Client, ClientError, to_label};

/// A session key handle and, when the appliance generated it, its wrapped form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKey {
    pub handle: u32,
    pub wrapped: Vec<u8>,
}

fn bounded<const N: usize>(what: &str, bytes: &[u8]) -> Result<heapless::Vec<u8, N>, ClientError> {
    heapless::Vec::from_slice(bytes)
        .map_err(|_| ClientError::InvalidArgument(format!("{what} is {} bytes; the limit is {N}", bytes.len())))
}

/// Bytes that are not secret (a ciphertext, MAC, digest, random bytes).
fn data(r: Response) -> Result<Vec<u8>, ClientError> {
    match r {
        Response::Data(d) => Ok(d.expose_secret().to_vec()),
        Response::Digest(d) | Response::Random(d) => Ok(d),
        other => Err(unexpected(&other)),
    }
}

/// Bytes that may be a plaintext: kept zeroizing, hidden from `Debug`.
fn secret(r: Response) -> Result<SecretBytes, ClientError> {
    match r {
        Response::Data(d) => Ok(d),
        other => Err(unexpected(&other)),
    }
}

fn password(p: &[u8]) -> Result<Password, ClientError> {
    Password::new(p).ok_or_else(|| {
        ClientError::InvalidArgument(format!("password is {} bytes; the limit is {}", p.len(), MAX_PASSWORD))
    })
}

impl Client {
    /// Generate a key with explicit capabilities (`Capabilities::DEFAULT`: the algorithm's
    /// natural set) and domains; returns the public key (empty for symmetric keys).
    pub fn generate_key_with(
        &mut self,
        label: &str,
        alg: KeyAlg,
        caps: Capabilities,
        domains: u32,
    ) -> Result<Vec<u8>, ClientError> {
        match self.call(Request::GenerateKey { label: to_label(label)?, alg, caps, domains })? {
            Response::KeyGenerated { spki_der, .. } => Ok(spki_der),
            other => Err(unexpected(&other)),
        }
    }

    pub fn key_info(&mut self, label: &str) -> Result<KeyInfo, ClientError> {
        match self.call(Request::GetKeyInfo { label: to_label(label)? })? {
            Response::KeyInfo(i) => Ok(i),
            other => Err(unexpected(&other)),
        }
    }

    pub fn random(&mut self, len: u32) -> Result<Vec<u8>, ClientError> {
        data(self.call(Request::GenerateRandom { len })?)
    }

    pub fn hash(&mut self, alg: HashAlg, bytes: &[u8]) -> Result<Vec<u8>, ClientError> {
        data(self.call(Request::Hash { alg, data: bytes.to_vec() })?)
    }

    /// Encrypt (with `Sm4Mode::…CardIv` or `CipherMech::Sm4GcmCardNonce`, the appliance draws
    /// the IV or nonce and the answer starts with it).
    pub fn encrypt(&mut self, key: KeyRef, mechanism: CipherMech, bytes: &[u8]) -> Result<Vec<u8>, ClientError> {
        data(self.call(Request::Encrypt { key, mechanism, data: bytes.to_vec() })?)
    }

    /// Decrypt: the plaintext, zeroed on drop and hidden from `Debug`.
    pub fn decrypt(&mut self, key: KeyRef, mechanism: CipherMech, bytes: &[u8]) -> Result<SecretBytes, ClientError> {
        secret(self.call(Request::Decrypt { key, mechanism, data: bytes.to_vec() })?)
    }

    /// Decrypt each of `ciphertexts` with the stored SM2 key `label` in one request
    /// (`DecryptBatch`, 1 to [`gmhsm_proto::MAX_DECRYPT_BATCH`]): the plaintexts in order,
    /// `None` for a ciphertext that did not decrypt; zeroed on drop, as [`Client::decrypt`]'s.
    pub fn decrypt_batch(
        &mut self,
        label: &str,
        mechanism: CipherMech,
        ciphertexts: &[&[u8]],
    ) -> Result<Vec<Option<SecretBytes>>, ClientError> {
        check_batch("ciphertexts", ciphertexts.len(), gmhsm_proto::MAX_DECRYPT_BATCH)?;
        let request = Request::DecryptBatch {
            label: to_label(label)?,
            mechanism,
            ciphertexts: ciphertexts.iter().map(|c| gmhsm_proto::ByteBuf::from(c.to_vec())).collect(),
        };
        match self.call(request)? {
            Response::Plaintexts(p) if p.len() == ciphertexts.len() => Ok(p),
            Response::Plaintexts(p) => {
                Err(ClientError::Protocol(format!("{} plaintexts for {} ciphertexts", p.len(), ciphertexts.len())))
            }
            other => Err(unexpected(&other)),
        }
    }

    pub fn mac(&mut self, key: KeyRef, mechanism: MacMech, bytes: &[u8]) -> Result<Vec<u8>, ClientError> {
        data(self.call(Request::Mac { key, mechanism, data: bytes.to_vec() })?)
    }

    /// `Ok(false)` when the MAC does not match.
    pub fn verify_mac(
        &mut self,
        key: KeyRef,
        mechanism: MacMech,
        bytes: &[u8],
        mac: &[u8],
    ) -> Result<bool, ClientError> {
        match self.call(Request::VerifyMac { key, mechanism, data: bytes.to_vec(), mac: mac.to_vec() }) {
            Ok(Response::Verified) => Ok(true),
            Ok(other) => Err(unexpected(&other)),
            Err(ClientError::Status(Status::SignatureInvalid)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Start a multi-part operation; feed it with [`Client::op_update`], end it with
    /// [`Client::op_final`]. It lives as long as this connection.
    pub fn op_init(&mut self, op: MultiOp) -> Result<u32, ClientError> {
        match self.call(Request::OpInit { op })? {
            Response::Handle(h) => Ok(h),
            other => Err(unexpected(&other)),
        }
    }

    /// The output so far (a plaintext when decrypting: zeroizing).
    pub fn op_update(&mut self, handle: u32, bytes: &[u8]) -> Result<SecretBytes, ClientError> {
        secret(self.call(Request::OpUpdate { handle, data: bytes.to_vec() })?)
    }

    /// The last output, digest or MAC (a plaintext when decrypting: zeroizing).
    pub fn op_final(&mut self, handle: u32, bytes: &[u8]) -> Result<SecretBytes, ClientError> {
        secret(self.call(Request::OpFinal { handle, data: bytes.to_vec() })?)
    }

    /// A fresh SM4 session key in the card, returned wrapped (a digital envelope).
    pub fn generate_session_key(&mut self, wrap: WrapWith) -> Result<SessionKey, ClientError> {
        match self.call(Request::GenerateSessionKey { wrap })? {
            Response::SessionKey { handle, wrapped } => Ok(SessionKey { handle, wrapped }),
            other => Err(unexpected(&other)),
        }
    }

    /// Open a client's envelope inside the card: the session key never leaves it.
    pub fn import_session_key(
        &mut self,
        unwrap_with: &str,
        mechanism: CipherMech,
        wrapped: &[u8],
    ) -> Result<u32, ClientError> {
        let r = self.call(Request::ImportSessionKey {
            unwrap_with: to_label(unwrap_with)?,
            mechanism,
            wrapped: wrapped.to_vec(),
        })?;
        match r {
            Response::SessionKey { handle, .. } => Ok(handle),
            other => Err(unexpected(&other)),
        }
    }

    pub fn destroy_session_key(&mut self, handle: u32) -> Result<(), ClientError> {
        match self.call(Request::DestroySessionKey { handle })? {
            Response::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// SM2 key exchange, initiator's first step: (pending handle, ephemeral public key).
    pub fn agreement_init(&mut self, label: &str, own_id: &[u8]) -> Result<(u32, Vec<u8>), ClientError> {
        let r =
            self.call(Request::AgreementInit { label: to_label(label)?, own_id: bounded("ID", own_id)?, key_len: 16 })?;
        match r {
            Response::Agreement { handle, ephemeral } => Ok((handle, ephemeral)),
            other => Err(unexpected(&other)),
        }
    }

    /// SM2 key exchange, responder: (session key handle, own ephemeral public key, S_B).
    pub fn agreement_respond(
        &mut self,
        label: &str,
        own_id: &[u8],
        peer_id: &[u8],
        peer_public: &[u8],
        peer_ephemeral: &[u8],
    ) -> Result<(u32, Vec<u8>, [u8; 32]), ClientError> {
        let r = self.call(Request::AgreementRespond {
            label: to_label(label)?,
            own_id: bounded("ID", own_id)?,
            peer_id: bounded("peer ID", peer_id)?,
            peer_public: peer_public.to_vec(),
            peer_ephemeral: peer_ephemeral.to_vec(),
            key_len: 16,
        })?;
        match r {
            Response::AgreementReply { key_handle, ephemeral, confirm } => Ok((key_handle, ephemeral, confirm)),
            other => Err(unexpected(&other)),
        }
    }

    /// SM2 key exchange, initiator's second step: the session key handle.
    pub fn agreement_finish(
        &mut self,
        handle: u32,
        peer_id: &[u8],
        peer_public: &[u8],
        peer_ephemeral: &[u8],
    ) -> Result<u32, ClientError> {
        let r = self.call(Request::AgreementFinish {
            handle,
            peer_id: bounded("peer ID", peer_id)?,
            peer_public: peer_public.to_vec(),
            peer_ephemeral: peer_ephemeral.to_vec(),
        })?;
        match r {
            Response::SessionKey { handle, .. } => Ok(handle),
            other => Err(unexpected(&other)),
        }
    }

    pub fn self_test(&mut self) -> Result<gmhsm_proto::StatusInfo, ClientError> {
        match self.call(Request::SelfTest)? {
            Response::Status(s) => Ok(s),
            other => Err(unexpected(&other)),
        }
    }

    pub fn set_key_password(&mut self, label: &str, password: &[u8]) -> Result<(), ClientError> {
        let r = self.call(Request::SetKeyPassword { label: to_label(label)?, password: self::password(password)? })?;
        match r {
            Response::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Prove a key's access password for this connection.
    pub fn authorize_key(&mut self, label: &str, password: &[u8]) -> Result<(), ClientError> {
        let r = self.call(Request::AuthorizeKey { label: to_label(label)?, password: self::password(password)? })?;
        match r {
            Response::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    pub fn read_audit(&mut self, from_seq: u64, max: u16) -> Result<Vec<AuditRecord>, ClientError> {
        match self.call(Request::ReadAudit { from_seq, max })? {
            Response::Audit(r) => Ok(r),
            other => Err(unexpected(&other)),
        }
    }

    /// Register an application by the SHA-256 of its certificate (local tools only), with
    /// the card's default quota ([`gmhsm_proto::AppQuota::DEFAULT`]).
    pub fn register_application(
        &mut self,
        cert_sha256: [u8; 32],
        name: &str,
        domains: u32,
        caps: Capabilities,
    ) -> Result<(), ClientError> {
        self.register_application_with_quota(cert_sha256, name, domains, caps, None)
    }

    /// [`Client::register_application`] with a quota of keys and store bytes (`None`: the
    /// card's default).
    pub fn register_application_with_quota(
        &mut self,
        cert_sha256: [u8; 32],
        name: &str,
        domains: u32,
        caps: Capabilities,
        quota: Option<gmhsm_proto::AppQuota>,
    ) -> Result<(), ClientError> {
        let name = heapless::String::try_from(name)
            .map_err(|_| ClientError::InvalidArgument("application name over 64 bytes".into()))?;
        match self.call(Request::RegisterApplication { cert_sha256, name, domains, caps, quota })? {
            Response::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Remove an application's registration (local tools under the quorum's authority).
    pub fn revoke_application(&mut self, cert_sha256: [u8; 32]) -> Result<(), ClientError> {
        match self.call(Request::RevokeApplication { cert_sha256 })? {
            Response::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// The administration state of this connection's card session.
    pub fn admin_status(&mut self) -> Result<gmhsm_proto::admin::AdminStatus, ClientError> {
        match self.call(Request::AdminStatus)? {
            Response::AdminState(s) => Ok(s),
            other => Err(unexpected(&other)),
        }
    }

    /// Ask the people at the front panel to approve this connection's session (local tools on
    /// a ceremony-initialized appliance): the code the panel shows them.
    pub fn request_approval(&mut self) -> Result<u16, ClientError> {
        match self.call(Request::AdminRequestApproval)? {
            Response::AdminState(gmhsm_proto::admin::AdminStatus { approval: Some(code), .. }) => Ok(code),
            Response::AdminState(_) => Err(ClientError::InvalidArgument("the card gave no approval code".into())),
            other => Err(unexpected(&other)),
        }
    }

    /// Stop (`true`) or start (`false`) the appliance's service for applications (local
    /// tools under a key-management quorum's authority, see docs/ceremonies.md).
    pub fn set_service(&mut self, stopped: bool) -> Result<(), ClientError> {
        let request = if stopped { Request::ServiceStop } else { Request::ServiceStart };
        match self.call(request)? {
            Response::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Import a GM/T 0016 enveloped SM2 key pair; returns its public key.
    pub fn import_enveloped_key_pair(
        &mut self,
        label: &str,
        unwrap_with: &str,
        blob: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        let r = self.call(Request::ImportEnvelopedKeyPair {
            label: to_label(label)?,
            unwrap_with: to_label(unwrap_with)?,
            blob: blob.to_vec(),
            caps: Capabilities::DEFAULT,
            domains: 0,
        })?;
        match r {
            Response::KeyGenerated { spki_der, .. } => Ok(spki_der),
            other => Err(unexpected(&other)),
        }
    }
}
