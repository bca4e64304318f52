//! Stored keys: generation, import of GM/T 0016 enveloped pairs, public keys and attributes,
//! listing, deletion, access passwords; application registration; and the requests of
//! `hsm/keypair.rs` (key pairs handed out, the export policy).

use alloc::vec::Vec;
use gmhsm_platform::Platform;
use gmhsm_proto::{
    AuditEvent, Capabilities as C, CipherMech, KeyAlg, KeyInfo, KeyRef, Label, Principal, Request, Response,
};
use zeroize::Zeroizing;

use super::super::access::AppRecord;
use super::super::plan::{KeyUse, NewKey, Step};
use super::super::{CACHE_MAX, Hsm, KEY_PREFIX, State, store_key, usage};
use super::sec1;
use crate::alg::{self, sm4};
use crate::error::Error;
use crate::keys::{self, KeyRecord, LoadedKey};
use crate::ops;

impl<P: Platform> Hsm<P> {
    pub(super) fn key_request(
        &mut self,
        principal: &Principal,
        session: u64,
        kind: u8,
        request: Request,
    ) -> Result<Step, Error> {
        let answer = match request {
            Request::GenerateKey { label, alg, caps, domains } => {
                return self.generate(principal, label, alg, caps, domains);
            }
            Request::GenerateKeyPair { alg, protection } => {
                return self.generate_key_pair(principal, session, kind, alg, protection);
            }
            Request::ExportPublicKey { label } => {
                let (rec, _) = self.visible(principal, &label)?;
                if !rec.alg.is_asymmetric() {
                    return Err(Error::WrongKeyType);
                }
                Response::PublicKey { alg: rec.alg, spki_der: rec.spki_der }
            }
            Request::GetKeyInfo { label } => {
                let (rec, caps) = self.visible(principal, &label)?;
                Response::KeyInfo(KeyInfo {
                    alg: rec.alg,
                    caps,
                    domains: rec.domains,
                    owner: rec.owner,
                    spki_der: rec.spki_der,
                    password: rec.password.is_some(),
                })
            }
            Request::DeleteKey { label } => self.delete_key(principal, kind, label)?,
            Request::ListKeys => self.list(principal)?,
            Request::SetKeyPassword { label, password } => {
                self.set_password(principal, &label, password.expose_secret())?;
                Response::Done
            }
            Request::AuthorizeKey { label, password } => {
                self.authorize(principal, session, &label, password.expose_secret())?;
                Response::Done
            }
            Request::RegisterApplication { cert_sha256, name, domains, caps, quota } => {
                if *principal != Principal::Local {
                    return Err(self.deny(principal, kind, Error::AccessDenied));
                }
                let quota = quota.unwrap_or(gmhsm_proto::AppQuota::DEFAULT);
                self.register_app(cert_sha256, &AppRecord { name, domains, caps, quota })?;
                Response::Done
            }
            Request::ImportEnvelopedKeyPair { label, unwrap_with, blob, caps, domains } => {
                let key = Imported { label, caps, domains };
                self.import_enveloped(principal, session, unwrap_with, &blob, key)?
            }
            Request::KeyExportPolicy { set } => self.key_export_policy(principal, session, kind, set)?,
            _ => return Err(Error::Invalid("request")),
        };
        Ok(Step::Answer(answer))
    }

    /// The owner deletes a key: audited first (a deletion that could not be audited does not
    /// happen), then the record, the cached key, its tables and session authorizations.
    fn delete_key(&mut self, principal: &Principal, kind: u8, label: Label) -> Result<Response, Error> {
        let (rec, _) = self.visible(principal, &label)?;
        if &rec.owner != principal {
            return Err(self.deny(principal, kind, Error::AccessDenied));
        }
        self.audited(principal, AuditEvent::KeyDeleted { label: label.clone() })?;
        let key = store_key(&label);
        let before = self.store.as_ref().ok_or(Error::Device("no store"))?.footprint(&key);
        self.records.remove(&label);
        self.sealed_put(&key, None)?;
        self.note_usage(&rec.owner, before, None);
        self.cache.remove(&label);
        self.fast.forget(&label);
        self.sessions.revoke(&label);
        Ok(Response::Deleted)
    }

    /// GM/T 0016 enveloped key pair: unwrap the SM4 key with `unwrap_with`, decrypt the
    /// private key, check it against the delivered public key, store it.
    fn import_enveloped(
        &mut self,
        principal: &Principal,
        session: u64,
        unwrap_with: Label,
        blob: &[u8],
        key: Imported,
    ) -> Result<Response, Error> {
        let env = crate::envelope::parse(blob)?;
        let sm2_mech = CipherMech::Sm2 { layout: gmhsm_proto::Sm2Layout::C1C3C2 };
        let sym = self.with_key(principal, session, &KeyRef::Label(unwrap_with), C::UNWRAP, |key, rng| {
            ops::decrypt(key, &sm2_mech, &env.wrapped_key_c1c3c2, rng)
        })?;
        let d = sm4::crypt(&sym, sm4::Mode::Ecb, sm4::Direction::Decrypt, sm4::Padding::None, env.encrypted_private)
            .map_err(|_| Error::DecryptFailed)?;
        let secret = alg::sm2::secret_from_bytes(&d).map_err(|_| Error::DecryptFailed)?;
        if sec1(&secret.public_key())[..] != env.public_sec1[..] {
            return Err(Error::DecryptFailed);
        }
        let natural = keys::default_caps(KeyAlg::Sm2);
        let caps = if key.caps == C::DEFAULT { C::ENCRYPT | C::DECRYPT | C::WRAP | C::UNWRAP } else { key.caps };
        if !natural.contains(caps) {
            return Err(Error::Invalid("capabilities"));
        }
        use rsa::pkcs8::EncodePublicKey;
        let sm2_key = alg::sm2::Sm2Key::new(secret);
        let spki_der = sm2_key.public().to_public_key_der().map_err(|_| Error::Internal("SPKI encoding"))?.into_vec();
        let generated =
            keys::Generated { private_der: Zeroizing::new(d.to_vec()), spki_der, key: LoadedKey::Sm2(sm2_key) };
        self.store_new_key(principal, key.label, KeyAlg::Sm2, caps, key.domains, generated)
    }

    /// `GenerateKey` checked: the label is free and the capabilities fit the algorithm. The
    /// key is generated by the plan's compute step, or was already (`Hsm::finish_keygen`).
    pub(in crate::hsm) fn generate(
        &mut self,
        principal: &Principal,
        label: Label,
        alg: KeyAlg,
        caps: C,
        domains: u32,
    ) -> Result<Step, Error> {
        if label.is_empty() {
            return Err(Error::Invalid("empty label"));
        }
        let skey = store_key(&label);
        if self.store.as_ref().ok_or(Error::Device("no store"))?.contains(&skey) {
            return Err(Error::KeyExists);
        }
        let caps = usage::generation_caps(alg, caps)?;
        self.key_step(NewKey { alg, then: KeyUse::Store { owner: principal.clone(), label, caps, domains } })
    }

    /// Wrap and store a key that was just made or imported; audited as generated.
    pub(in crate::hsm) fn store_new_key(
        &mut self,
        principal: &Principal,
        label: Label,
        alg: KeyAlg,
        caps: C,
        domains: u32,
        generated: keys::Generated,
    ) -> Result<Response, Error> {
        if self.store.as_ref().ok_or(Error::Device("no store"))?.contains(&store_key(&label)) {
            return Err(Error::KeyExists);
        }
        let mut nonce = [0u8; crate::wrap::NONCE_LEN];
        self.rng.fill(&mut nonce)?;
        let State::Operational(wrapper) = &self.state else { return Err(Error::Device("not operational")) };
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
        if let Err(e) = self.audited(principal, AuditEvent::KeyGenerated { label: label.clone(), alg }) {
            // Not audited: undo (an application's request; the card stays operational).
            self.forget_new_record(&label, &rec.owner);
            return Err(e);
        }
        if self.cache.len() >= CACHE_MAX {
            self.cache.pop_first();
        }
        self.cache.insert(label, generated.key);
        Ok(Response::KeyGenerated { alg, spki_der: generated.spki_der })
    }

    fn list(&mut self, principal: &Principal) -> Result<Response, Error> {
        let store = self.store.as_ref().ok_or(Error::Device("no store"))?;
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
}

/// Where and how an imported key pair is stored.
struct Imported {
    label: Label,
    caps: C,
    domains: u32,
}
