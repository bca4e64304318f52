//! The request handlers: one arm per request, each checking access through
//! [`Hsm::use_key`] before any key is touched.

use alloc::vec::Vec;
use gmhsm_platform::Platform;
use gmhsm_proto::{
    AuditEvent, Capabilities as C, CipherMech, HashAlg, KeyAlg, KeyInfo, KeyRef, Label, MacMech, MultiOp, Principal,
    Request, Response, SecretBytes, Status, WrapWith,
};
use sha2::Digest as _;
use zeroize::Zeroizing;

use super::access::AppRecord;
use super::usage::{self, Shape};
use super::{CACHE_MAX, Hsm, KEY_PREFIX, State, store_key};
use crate::alg::{self, sm4};
use crate::keys::{self, KeyRecord, LoadedKey, alg_status};
use crate::ops::{self, Public};
use crate::session::{Handle, Op};

/// Most bytes of random data per request.
const MAX_RANDOM: u32 = 1 << 16;

impl<P: Platform> Hsm<P> {
    pub(super) fn dispatch(
        &mut self,
        principal: &Principal,
        session: u64,
        request: Request,
    ) -> Result<Response, Status> {
        let kind = request.index();
        if self.service_refuses(principal, &request) {
            return Err(Status::ServiceStopped);
        }
        if self.certificate_refuses(principal, &request) {
            return Err(self.deny(principal, kind, Status::AccessDenied));
        }
        match request {
            Request::Ping => return Ok(Response::Pong),
            Request::GetStatus => return Ok(Response::Status(self.status())),
            Request::CloseSession => {
                self.sessions.close(session);
                self.admin_session_closed(session);
                return Ok(Response::Done);
            }
            Request::ReadAudit { from_seq, max } => {
                if !self.audit_reader(principal) {
                    return Err(self.deny(principal, kind, Status::AccessDenied));
                }
                let (Some(store), Some(audit)) = (self.store.as_ref(), self.audit.as_ref()) else {
                    return Err(Status::DeviceError);
                };
                return Ok(Response::Audit(audit.read(store, from_seq, max.min(256))));
            }
            Request::AuditCheckpoint { seq } => {
                if *principal != Principal::Local {
                    return Err(self.deny(principal, kind, Status::AccessDenied));
                }
                return self.audit_checkpoint(seq).map(Response::AuditCheckpoint);
            }
            Request::SelfTest => {
                if let Err(why) = crate::selftest::run() {
                    self.cache.clear();
                    self.records.clear();
                    self.fast.clear();
                    self.state = State::Error(why);
                    self.log(None, AuditEvent::ErrorState { reason: super::short(why) });
                }
                return Ok(Response::Status(self.status()));
            }
            r @ (Request::AdminChallenge
            | Request::AdminLogin { .. }
            | Request::AdminLogout { .. }
            | Request::AdminStatus
            | Request::InitBegin { .. }
            | Request::ReplaceBegin { .. }
            | Request::CeremonyEnroll { .. }
            | Request::CeremonyShare { .. }
            | Request::CeremonyVerify { .. }
            | Request::CeremonyCommit
            | Request::CeremonyAbort
            | Request::AuthorizeUnblock { .. }
            | Request::SetPolicy { .. }
            | Request::RevokeApplication { .. }
            | Request::Zeroize
            | Request::ServiceStop
            | Request::ServiceStart
            | Request::AdminRequestApproval
            | Request::AdminApprove { .. }
            | Request::RegisterAuditor { .. }) => return self.admin(principal, session, kind, r),
            _ => {}
        }
        match self.state {
            State::Factory => return Err(self.deny(principal, kind, Status::NotInitialized)),
            State::Error(_) => return Err(self.deny(principal, kind, Status::DeviceError)),
            State::Operational(_) => {}
        }
        self.reserved_gate(principal, kind, &request)?;
        self.admin_gate(principal, session, kind, &request)?;
        match request {
            Request::GenerateKey { label, alg, caps, domains } => self.generate(principal, label, alg, caps, domains),
            Request::ExportPublicKey { label } => {
                let (rec, _) = self.visible(principal, &label)?;
                if !rec.alg.is_asymmetric() {
                    return Err(Status::WrongKeyType);
                }
                Ok(Response::PublicKey { alg: rec.alg, spki_der: rec.spki_der })
            }
            Request::GetKeyInfo { label } => {
                let (rec, caps) = self.visible(principal, &label)?;
                Ok(Response::KeyInfo(KeyInfo {
                    alg: rec.alg,
                    caps,
                    domains: rec.domains,
                    owner: rec.owner,
                    spki_der: rec.spki_der,
                    password: rec.password.is_some(),
                }))
            }
            Request::Sign { label, mechanism, message } => {
                self.signing_key(principal, session, &label, &mechanism)?;
                let mut sig = self.sign_many(&label, &mechanism, &[&message[..]])?;
                Ok(Response::Signature(sig.pop().ok_or(Status::Internal)?))
            }
            Request::SignBatch { label, mechanism, messages } => {
                if messages.is_empty() || messages.len() > gmhsm_proto::MAX_SIGN_BATCH {
                    return Err(Status::InvalidArgument);
                }
                let rec = self.signing_key(principal, session, &label, &mechanism)?;
                let rsa = matches!(rec.alg, KeyAlg::Rsa2048 | KeyAlg::Rsa3072 | KeyAlg::Rsa4096);
                if rsa && messages.len() > gmhsm_proto::MAX_SIGN_BATCH_RSA {
                    return Err(Status::InvalidArgument);
                }
                // All or nothing: a message the mechanism refuses fails the batch before any
                // nonce is spent.
                if matches!(mechanism, gmhsm_proto::Mechanism::Sm2Digest) && messages.iter().any(|m| m.len() != 32) {
                    return Err(Status::InvalidArgument);
                }
                let messages: Vec<&[u8]> = messages.iter().map(|m| &m[..]).collect();
                let signatures = self.sign_many(&label, &mechanism, &messages)?;
                Ok(Response::Signatures(signatures.into_iter().map(gmhsm_proto::ByteBuf::from).collect()))
            }
            Request::Verify { label, mechanism, message, signature } => {
                let rec = self.use_key(principal, session, &label, C::VERIFY)?;
                match Public::from_spki(&rec.spki_der)? {
                    Public::Sm2(p) if ops::mechanism_fits(rec.alg, &mechanism) => {
                        self.fast.verify(&label, &p, &mechanism, &message, &signature)?
                    }
                    public => ops::verify(&public, &mechanism, &message, &signature)?,
                }
                Ok(Response::Verified)
            }
            Request::DeleteKey { label } => {
                let (rec, _) = self.visible(principal, &label)?;
                if &rec.owner != principal {
                    return Err(self.deny(principal, kind, Status::AccessDenied));
                }
                // Audited first: a deletion that could not be audited does not happen.
                self.audited(principal, AuditEvent::KeyDeleted { label: label.clone() })?;
                let key = store_key(&label);
                let before = self.store.as_ref().ok_or(Status::DeviceError)?.footprint(&key);
                self.records.remove(&label);
                self.sealed_put(&key, None)?;
                self.note_usage(&rec.owner, before, None);
                self.cache.remove(&label);
                self.fast.forget(&label);
                self.sessions.revoke(&label);
                Ok(Response::Deleted)
            }
            Request::ListKeys => self.list(principal),
            Request::GenerateRandom { len } => {
                if len > MAX_RANDOM {
                    return Err(Status::InvalidArgument);
                }
                let mut out = alloc::vec![0u8; len as usize];
                self.rng.fill(&mut out).map_err(|_| Status::DeviceError)?;
                Ok(Response::Random(out))
            }
            Request::Hash { alg, data } => Ok(Response::Digest(match alg {
                HashAlg::Sm3 => alg::sm3::sm3(&data).to_vec(),
                HashAlg::Sha256 => sha2::Sha256::digest(&data).to_vec(),
                _ => return Err(Status::InvalidArgument),
            })),
            // SM2 to a stored SM2 key goes through the card's tables (the key's own once it is
            // used often: `Sm2Fast::encrypt`); any other key type is refused by `ops::encrypt`.
            Request::Encrypt { key: KeyRef::Label(label), mechanism: CipherMech::Sm2 { layout }, data } => {
                self.use_key(principal, session, &label, C::ENCRYPT)?;
                let out = match self.cache.get(&label).ok_or(Status::Internal)? {
                    LoadedKey::Sm2(secret) => {
                        let public = *secret.public();
                        self.fast.encrypt(&label, &public, &data, ops::sm2_layout(layout), &mut self.rng)?
                    }
                    other => ops::encrypt(other, &CipherMech::Sm2 { layout }, &data, &mut self.rng, None)?,
                };
                Ok(Response::Data(SecretBytes::new(out)))
            }
            Request::Encrypt { key, mechanism, data } => {
                let table = self.fast.table().clone();
                let need = usage::cipher_need(C::ENCRYPT, &mechanism, sm4::Direction::Encrypt, Shape::OneShot);
                let out = self.with_key(principal, session, &key, need, |key, rng| {
                    ops::encrypt(key, &mechanism, &data, rng, Some(&table))
                })?;
                Ok(Response::Data(SecretBytes::new(out)))
            }
            Request::Decrypt { key, mechanism, data } => {
                // Inside `Hsm::execute_many`, an SM2 decryption with a stored SM2 key passes
                // every check here and leaves its computation to its run.
                let defer = self.deferring;
                let mut deferred = None;
                let need = usage::cipher_need(C::DECRYPT, &mechanism, sm4::Direction::Decrypt, Shape::OneShot);
                let out = self.with_key(principal, session, &key, need, |key, rng| match (key, &mechanism) {
                    (LoadedKey::Sm2(secret), CipherMech::Sm2 { layout }) if defer => {
                        deferred = Some((sm2::SecretKey::clone(secret), *layout));
                        Ok(Vec::new())
                    }
                    _ => ops::decrypt(key, &mechanism, &data, rng).map(|z| z.to_vec()),
                })?;
                if let (Some((secret, layout)), KeyRef::Label(label)) = (deferred, key) {
                    self.deferred = Some(super::Deferred { label, secret, layout, data });
                }
                Ok(Response::Data(SecretBytes::new(out)))
            }
            Request::DecryptBatch { label, mechanism, ciphertexts } => {
                if ciphertexts.is_empty() || ciphertexts.len() > gmhsm_proto::MAX_DECRYPT_BATCH {
                    return Err(Status::InvalidArgument);
                }
                self.use_key(principal, session, &label, C::DECRYPT)?;
                let (Some(LoadedKey::Sm2(secret)), CipherMech::Sm2 { layout }) = (self.cache.get(&label), mechanism)
                else {
                    return Err(Status::WrongKeyType);
                };
                let cts: Vec<&[u8]> = ciphertexts.iter().map(|c| &c[..]).collect();
                let out = super::decrypt_split::<P>(secret, &cts, ops::sm2_layout(layout));
                Ok(Response::Plaintexts(
                    out.into_iter().map(|r| r.ok().map(|m| SecretBytes::new(m.to_vec()))).collect(),
                ))
            }
            Request::Mac { key, mechanism, data } => {
                let need = usage::mac_need(mechanism)?;
                let out = self.with_key(principal, session, &key, need, |key, _| mac_with(key, mechanism, &data))?;
                Ok(Response::Data(SecretBytes::new(out)))
            }
            Request::VerifyMac { key, mechanism, data, mac } => {
                let need = usage::mac_need(mechanism)?;
                let tag = self.with_key(principal, session, &key, need, |key, _| mac_with(key, mechanism, &data))?;
                use subtle::ConstantTimeEq;
                if tag.len() == mac.len() && bool::from(tag.ct_eq(&mac)) {
                    Ok(Response::Verified)
                } else {
                    Err(Status::SignatureInvalid)
                }
            }
            Request::OpInit { op } => self.op_init(principal, session, op),
            Request::OpUpdate { handle, data } => self.op_update(principal, session, handle, &data),
            Request::OpFinal { handle, data } => self.op_final(principal, session, handle, &data),
            Request::GenerateSessionKey { wrap } => self.generate_session_key(principal, session, wrap),
            Request::ImportSessionKey { unwrap_with, mechanism, wrapped } => {
                let need = usage::cipher_need(C::UNWRAP, &mechanism, sm4::Direction::Decrypt, Shape::OneShot);
                let raw = self.with_key(principal, session, &KeyRef::Label(unwrap_with), need, |key, rng| {
                    ops::decrypt(key, &mechanism, &wrapped, rng).map(|z| z.to_vec())
                })?;
                let raw = Zeroizing::new(raw);
                let k: [u8; 16] = raw.as_slice().try_into().map_err(|_| Status::DecryptFailed)?;
                let handle = self.sessions.get(session, principal)?.insert(Handle::Key(Zeroizing::new(k)))?;
                Ok(Response::SessionKey { handle, wrapped: Vec::new() })
            }
            Request::DestroySessionKey { handle } => {
                let s = self.sessions.get(session, principal)?;
                match s.take(handle)? {
                    Handle::Key(_) => Ok(Response::Done),
                    other => {
                        s.insert(other)?;
                        Err(Status::UnknownHandle)
                    }
                }
            }
            Request::AgreementInit { label, own_id, key_len } => {
                if key_len != 16 {
                    return Err(Status::InvalidArgument);
                }
                self.use_key(principal, session, &label, C::DERIVE)?;
                let Some(LoadedKey::Sm2(secret)) = self.cache.get(&label) else { return Err(Status::WrongKeyType) };
                let initiator = alg::sm2_kex::Initiator::start(&mut self.rng, secret, &own_id).map_err(alg_status)?;
                let ephemeral = sec1(initiator.ephemeral());
                let handle =
                    self.sessions.get(session, principal)?.insert(Handle::Agreement { initiator, label, key_len })?;
                Ok(Response::Agreement { handle, ephemeral })
            }
            Request::AgreementRespond { label, own_id, peer_id, peer_public, peer_ephemeral, key_len } => {
                if key_len != 16 {
                    return Err(Status::InvalidArgument);
                }
                self.use_key(principal, session, &label, C::DERIVE)?;
                let peer = alg::sm2::public_from_sec1(&peer_public).map_err(alg_status)?;
                let peer_eph = alg::sm2::public_from_sec1(&peer_ephemeral).map_err(alg_status)?;
                let Some(LoadedKey::Sm2(secret)) = self.cache.get(&label) else { return Err(Status::WrongKeyType) };
                let party = alg::sm2_kex::Party { id: &peer_id, public: &peer };
                let (reply, key) =
                    alg::sm2_kex::respond(&mut self.rng, secret, &own_id, party, &peer_eph, 16).map_err(alg_status)?;
                let k = to_key16(&key.without_confirmation())?;
                let key_handle = self.sessions.get(session, principal)?.insert(Handle::Key(k))?;
                Ok(Response::AgreementReply { key_handle, ephemeral: sec1(&reply.ephemeral), confirm: reply.sb })
            }
            Request::AgreementFinish { handle, peer_id, peer_public, peer_ephemeral } => {
                let peer = alg::sm2::public_from_sec1(&peer_public).map_err(alg_status)?;
                let peer_eph = alg::sm2::public_from_sec1(&peer_ephemeral).map_err(alg_status)?;
                let s = self.sessions.get(session, principal)?;
                let Handle::Agreement { initiator, key_len, .. } = s.take(handle)? else {
                    return Err(Status::UnknownHandle);
                };
                let party = alg::sm2_kex::Party { id: &peer_id, public: &peer };
                let out = initiator.finish(party, &peer_eph, key_len as usize, None).map_err(alg_status)?;
                let k = to_key16(&out.key)?;
                let key_handle = s.insert(Handle::Key(k))?;
                Ok(Response::SessionKey { handle: key_handle, wrapped: Vec::new() })
            }
            Request::SetKeyPassword { label, password } => {
                self.set_password(principal, &label, password.expose_secret())?;
                Ok(Response::Done)
            }
            Request::AuthorizeKey { label, password } => {
                self.authorize(principal, session, &label, password.expose_secret())?;
                Ok(Response::Done)
            }
            Request::RegisterApplication { cert_sha256, name, domains, caps, quota } => {
                if *principal != Principal::Local {
                    return Err(self.deny(principal, kind, Status::AccessDenied));
                }
                let quota = quota.unwrap_or(gmhsm_proto::AppQuota::DEFAULT);
                self.register_app(cert_sha256, &AppRecord { name, domains, caps, quota })?;
                Ok(Response::Done)
            }
            Request::ImportEnvelopedKeyPair { label, unwrap_with, blob, caps, domains } => {
                self.import_enveloped(principal, session, label, unwrap_with, &blob, caps, domains)
            }
            Request::GenerateKeyPair { alg, protection } => {
                self.generate_key_pair(principal, session, kind, alg, protection)
            }
            Request::KeyExportPolicy { set } => self.key_export_policy(principal, session, kind, set),
            _ => Err(Status::InvalidArgument),
        }
    }

    /// GM/T 0016 enveloped key pair: unwrap the SM4 key with `unwrap_with`, decrypt the
    /// private key, check it against the delivered public key, store it.
    #[allow(clippy::too_many_arguments)]
    fn import_enveloped(
        &mut self,
        principal: &Principal,
        session: u64,
        label: Label,
        unwrap_with: Label,
        blob: &[u8],
        caps: C,
        domains: u32,
    ) -> Result<Response, Status> {
        let env = crate::envelope::parse(blob)?;
        let sm2_mech = CipherMech::Sm2 { layout: gmhsm_proto::Sm2Layout::C1C3C2 };
        let sym = self.with_key(principal, session, &KeyRef::Label(unwrap_with), C::UNWRAP, |key, rng| {
            ops::decrypt(key, &sm2_mech, &env.wrapped_key_c1c3c2, rng)
        })?;
        let d = sm4::crypt(&sym, sm4::Mode::Ecb, sm4::Direction::Decrypt, sm4::Padding::None, env.encrypted_private)
            .map_err(|_| Status::DecryptFailed)?;
        let secret = alg::sm2::secret_from_bytes(&d).map_err(|_| Status::DecryptFailed)?;
        if sec1(&secret.public_key())[..] != env.public_sec1[..] {
            return Err(Status::DecryptFailed);
        }
        let natural = keys::default_caps(KeyAlg::Sm2);
        let caps = if caps == C::DEFAULT { C::ENCRYPT | C::DECRYPT | C::WRAP | C::UNWRAP } else { caps };
        if !natural.contains(caps) {
            return Err(Status::InvalidArgument);
        }
        use rsa::pkcs8::EncodePublicKey;
        let key = alg::sm2::Sm2Key::new(secret);
        let spki_der = key.public().to_public_key_der().map_err(|_| Status::Internal)?.into_vec();
        let generated = keys::Generated { private_der: Zeroizing::new(d.to_vec()), spki_der, key: LoadedKey::Sm2(key) };
        self.store_new_key(principal, label, KeyAlg::Sm2, caps, domains, generated)
    }

    pub(super) fn generate(
        &mut self,
        principal: &Principal,
        label: Label,
        alg: KeyAlg,
        caps: C,
        domains: u32,
    ) -> Result<Response, Status> {
        if label.is_empty() {
            return Err(Status::InvalidArgument);
        }
        let skey = store_key(&label);
        if self.store.as_ref().ok_or(Status::DeviceError)?.contains(&skey) {
            return Err(Status::KeyExists);
        }
        let caps = usage::generation_caps(alg, caps)?;
        // `None`: checked, and left for a job computed outside the card's lock (`longop.rs`).
        let Some(generated) = self.new_key(alg)? else { return Ok(Response::Done) };
        self.store_new_key(principal, label, alg, caps, domains, generated)
    }

    /// Wrap and store a key that was just made or imported; audited as generated.
    fn store_new_key(
        &mut self,
        principal: &Principal,
        label: Label,
        alg: KeyAlg,
        caps: C,
        domains: u32,
        generated: keys::Generated,
    ) -> Result<Response, Status> {
        if self.store.as_ref().ok_or(Status::DeviceError)?.contains(&store_key(&label)) {
            return Err(Status::KeyExists);
        }
        let mut nonce = [0u8; crate::wrap::NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| Status::DeviceError)?;
        let State::Operational(wrapper) = &self.state else { return Err(Status::DeviceError) };
        let mut rec = KeyRecord {
            alg,
            owner: principal.clone(),
            caps,
            domains,
            spki_der: generated.spki_der.clone(),
            wrapped: Vec::new(),
            password: None,
        };
        rec.wrapped = wrapper.wrap(nonce, &rec.aad(&label), &generated.private_der);
        self.save_record(&label, &rec)?;
        if let Err(s) = self.audited(principal, AuditEvent::KeyGenerated { label: label.clone(), alg }) {
            // Not audited: undo (an application's request; the card stays operational).
            self.forget_new_record(&label, &rec.owner);
            return Err(s);
        }
        if self.cache.len() >= CACHE_MAX {
            self.cache.pop_first();
        }
        self.cache.insert(label, generated.key);
        Ok(Response::KeyGenerated { alg, spki_der: generated.spki_der })
    }

    fn list(&mut self, principal: &Principal) -> Result<Response, Status> {
        let store = self.store.as_ref().ok_or(Status::DeviceError)?;
        let labels: Vec<Vec<u8>> = store.keys().filter(|k| k.starts_with(KEY_PREFIX)).map(|k| k.to_vec()).collect();
        let mut out = Vec::new();
        for k in labels {
            let Ok(s) = core::str::from_utf8(&k[KEY_PREFIX.len()..]) else { continue };
            let Ok(label) = Label::try_from(s) else { continue };
            if let Ok(rec) = self.load_record(&label)
                && self.rights(principal, &rec).is_some()
            {
                out.push((label, rec.alg));
            }
        }
        Ok(Response::Keys(out))
    }

    /// Run `f` with the key a [`KeyRef`] names (stored: after every access check and the
    /// rules of [`usage::check_key`]; session: from this session, no capability rules).
    fn with_key<T>(
        &mut self,
        principal: &Principal,
        session: u64,
        key: &KeyRef,
        need: C,
        f: impl FnOnce(&LoadedKey, &mut crate::rng::CardRng<P::Noise>) -> Result<T, Status>,
    ) -> Result<T, Status> {
        match key {
            KeyRef::Label(label) => {
                let rec = self.use_key(principal, session, label, need)?;
                usage::check_key(rec.alg, rec.caps, need)?;
                let k = self.cache.get(label).ok_or(Status::Internal)?;
                f(k, &mut self.rng)
            }
            KeyRef::Session(h) => {
                let k = LoadedKey::Sm4(Zeroizing::new(*self.sessions.get(session, principal)?.key(*h)?));
                f(&k, &mut self.rng)
            }
        }
    }

    fn generate_session_key(
        &mut self,
        principal: &Principal,
        session: u64,
        wrap: WrapWith,
    ) -> Result<Response, Status> {
        let mut k = Zeroizing::new([0u8; 16]);
        self.rng.fill(&mut k[..]).map_err(|_| Status::DeviceError)?;
        let wrapped = match wrap {
            WrapWith::Key { label, mechanism } => {
                let table = self.fast.table().clone();
                let need = usage::cipher_need(C::WRAP, &mechanism, sm4::Direction::Encrypt, Shape::OneShot);
                self.with_key(principal, session, &KeyRef::Label(label), need, |key, rng| {
                    ops::encrypt(key, &mechanism, &k[..], rng, Some(&table))
                })?
            }
            WrapWith::External { spki_der, mechanism } => {
                let public = Public::from_spki(&spki_der)?;
                ops::encrypt_public(&public, &mechanism, &k[..], &mut self.rng, Some(self.fast.table()))?
            }
            _ => return Err(Status::InvalidArgument),
        };
        let handle = self.sessions.get(session, principal)?.insert(Handle::Key(k))?;
        Ok(Response::SessionKey { handle, wrapped })
    }

    fn op_init(&mut self, principal: &Principal, session: u64, op: MultiOp) -> Result<Response, Status> {
        let e = alg_status;
        let op = match op {
            MultiOp::Hash { alg: HashAlg::Sm3 } => Op::Sm3(alg::sm3::Sm3Ctx::new()),
            MultiOp::Hash { alg: HashAlg::Sha256 } => Op::Sha256(sha2::Sha256::new()),
            MultiOp::HashSm2 { spki_der, distid } => {
                let Public::Sm2(p) = Public::from_spki(&spki_der)? else { return Err(Status::WrongKeyType) };
                let mut ctx = alg::sm3::Sm3Ctx::new();
                ctx.update(&alg::sm2::z_hash(&distid, &p).map_err(e)?);
                Op::Sm3(ctx)
            }
            MultiOp::Encrypt { key, mechanism } => {
                self.sym_op(principal, session, &key, &mechanism, sm4::Direction::Encrypt)?
            }
            MultiOp::Decrypt { key, mechanism } => {
                self.sym_op(principal, session, &key, &mechanism, sm4::Direction::Decrypt)?
            }
            MultiOp::Mac { key, mechanism } => {
                self.with_key(principal, session, &key, usage::mac_need(mechanism)?, |key, _| {
                    let raw = ops::secret_bytes(key).ok_or(Status::WrongKeyType)?;
                    Ok(match mechanism {
                        MacMech::HmacSm3 => Op::Hmac(alg::sm3::HmacSm3Ctx::new(raw).map_err(e)?),
                        MacMech::Sm4Cmac => Op::Cmac(sm4::Sm4CmacCtx::new(raw).map_err(e)?),
                        MacMech::Sm4CbcMac { .. } => Op::CbcMac(sm4::Sm4CbcMacCtx::new(raw).map_err(e)?),
                        _ => return Err(Status::InvalidArgument),
                    })
                })?
            }
            _ => return Err(Status::InvalidArgument),
        };
        let handle = self.sessions.get(session, principal)?.insert(Handle::Op(op))?;
        Ok(Response::Handle(handle))
    }

    fn sym_op(
        &mut self,
        principal: &Principal,
        session: u64,
        key: &KeyRef,
        mechanism: &CipherMech,
        dir: sm4::Direction,
    ) -> Result<Op, Status> {
        let base = if dir == sm4::Direction::Encrypt { C::ENCRYPT } else { C::DECRYPT };
        let need = usage::cipher_need(base, mechanism, dir, Shape::MultiPart);
        self.with_key(principal, session, key, need, |key, rng| {
            let LoadedKey::Sm4(raw) = key else { return Err(Status::WrongKeyType) };
            Ok(match ops::sym_ctx(&raw[..], mechanism, dir, rng)? {
                ops::SymCtx::Sm4(c) => Op::Sm4(c),
                ops::SymCtx::Gcm(c) => Op::Gcm(c),
            })
        })
    }

    fn op_update(&mut self, principal: &Principal, session: u64, handle: u32, data: &[u8]) -> Result<Response, Status> {
        let s = self.sessions.get(session, principal)?;
        let Handle::Op(op) = s.get_mut(handle)? else { return Err(Status::UnknownHandle) };
        let out = match op {
            Op::Sm3(c) => {
                c.update(data);
                Vec::new()
            }
            Op::Sha256(c) => {
                c.update(data);
                Vec::new()
            }
            Op::Sm4(c) => c.update(data).to_vec(),
            Op::Gcm(c) => match c.update(data) {
                Ok(o) => o.to_vec(),
                Err(e) => {
                    let _ = s.take(handle);
                    return Err(alg_status(e));
                }
            },
            Op::Hmac(c) => {
                c.update(data);
                Vec::new()
            }
            Op::Cmac(c) => {
                c.update(data);
                Vec::new()
            }
            Op::CbcMac(c) => {
                c.update(data);
                Vec::new()
            }
        };
        Ok(Response::Data(SecretBytes::new(out)))
    }

    fn op_final(&mut self, principal: &Principal, session: u64, handle: u32, data: &[u8]) -> Result<Response, Status> {
        let s = self.sessions.get(session, principal)?;
        let Handle::Op(op) = s.take(handle)? else { return Err(Status::UnknownHandle) };
        let e = alg_status;
        let out = match op {
            Op::Sm3(mut c) => {
                c.update(data);
                c.finalize().to_vec()
            }
            Op::Sha256(mut c) => {
                c.update(data);
                c.finalize().to_vec()
            }
            Op::Sm4(mut c) => {
                let mut out = c.update(data).to_vec();
                out.extend_from_slice(&c.finalize().map_err(e)?);
                out
            }
            Op::Gcm(mut c) => {
                c.update(data).map_err(e)?;
                c.finalize().map_err(e)?.to_vec()
            }
            Op::Hmac(mut c) => {
                c.update(data);
                c.finalize().to_vec()
            }
            Op::Cmac(mut c) => {
                c.update(data);
                c.finalize().to_vec()
            }
            Op::CbcMac(mut c) => {
                c.update(data);
                c.finalize().map_err(e)?.to_vec()
            }
        };
        Ok(Response::Data(SecretBytes::new(out)))
    }
}

fn mac_with(key: &LoadedKey, mechanism: MacMech, data: &[u8]) -> Result<Vec<u8>, Status> {
    let raw = ops::secret_bytes(key).ok_or(Status::WrongKeyType)?;
    ops::mac(raw, mechanism, data)
}

fn sec1(p: &sm2::PublicKey) -> Vec<u8> {
    let mut out = alloc::vec![4u8];
    out.extend_from_slice(&alg::sm2::public_xy(p));
    out
}

fn to_key16(k: &[u8]) -> Result<Zeroizing<[u8; 16]>, Status> {
    let a: [u8; 16] = k.try_into().map_err(|_| Status::Internal)?;
    Ok(Zeroizing::new(a))
}

impl<P: Platform> Hsm<P> {
    /// The record of the key `label` for signing with `mechanism`: the caller may sign with it
    /// (loaded, password proved if it has one) and the mechanism fits its algorithm.
    fn signing_key(
        &mut self,
        principal: &Principal,
        session: u64,
        label: &Label,
        mechanism: &gmhsm_proto::Mechanism,
    ) -> Result<KeyRecord, Status> {
        let rec = self.use_key(principal, session, label, C::SIGN)?;
        if !ops::mechanism_fits(rec.alg, mechanism) {
            return Err(Status::WrongKeyType);
        }
        Ok(rec)
    }

    /// One signature with the loaded key `label`, not an SM2 key (access and mechanism already
    /// checked): ECDSA P-256 through the card's nonce pool, the rest through [`ops::sign`].
    /// `ahead`: signatures this request still makes, this one included (sizes an inline refill).
    fn sign_one(
        &mut self,
        label: &Label,
        mechanism: &gmhsm_proto::Mechanism,
        message: &[u8],
        ahead: usize,
    ) -> Result<Vec<u8>, Status> {
        let key = self.cache.get(label).ok_or(Status::Internal)?;
        match (key, mechanism) {
            (LoadedKey::P256(key), gmhsm_proto::Mechanism::EcdsaP256Sha256) => {
                self.fast.sign_p256(key, message, &mut self.rng, ahead)
            }
            (key, _) => ops::sign(key, mechanism, message, &mut self.rng),
        }
    }

    /// Every message signed with the loaded key `label`, in order (access and mechanism
    /// already checked; `Sign` is a batch of one): SM2 keys in one call of
    /// `Sm2Fast::sign_many` (digests computed together), other keys one `sign_one` at a time.
    fn sign_many(
        &mut self,
        label: &Label,
        mechanism: &gmhsm_proto::Mechanism,
        messages: &[&[u8]],
    ) -> Result<Vec<Vec<u8>>, Status> {
        if let Some(LoadedKey::Sm2(secret)) = self.cache.get(label) {
            return self.fast.sign_many(label, secret, mechanism, messages, &mut self.rng);
        }
        (0..messages.len()).map(|i| self.sign_one(label, mechanism, messages[i], messages.len() - i)).collect()
    }
}
