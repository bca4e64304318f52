//! Who may use which key: ownership, application domains and capabilities, and private-key
//! access passwords. Every use of a stored key goes through [`Hsm::use_key`].
//!
//! Rules:
//! * a key is visible to its owner, and to applications registered (by the card's
//!   application table) in one of the key's domains; to everyone else it does not exist
//!   (`UnknownKey`), and the attempt is audited as a denial;
//! * the key's capabilities must contain what the request needs, and for a non-owner the
//!   application's registered capabilities too (`AccessDenied`, audited);
//! * a key with an access password may use its private or secret half (sign, decrypt,
//!   unwrap, derive; MAC and encrypt with a secret key) only in a session that proved the
//!   password (`PasswordRequired`); after 5 wrong passwords in a row the key is locked until
//!   local administration sets a new one. Only a principal that may use that half may try a
//!   password: others are refused (`AccessDenied`) without touching the failure counter.

use alloc::vec::Vec;
use gmhsm_platform::Platform;
use gmhsm_proto::{AppQuota, AuditEvent, Capabilities, KeyAlg, Label, Principal};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::{CACHE_MAX, Hsm, State, store_key};
use crate::error::Error;
use crate::keys::{self, KeyRecord, MAX_PASSWORD_FAILURES, PBKDF2_ITERATIONS, PasswordRecord};

/// A registered application (store key `app:` + certificate SHA-256).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppRecord {
    pub name: heapless::String<64>,
    pub domains: u32,
    pub caps: Capabilities,
    /// Keys and store bytes it may own (see `quota`).
    pub quota: AppQuota,
}

impl AppRecord {
    /// Decode a stored record; one written before quotas existed gets [`AppQuota::DEFAULT`].
    fn decode(raw: &[u8]) -> Option<Self> {
        #[derive(Deserialize)]
        struct Before {
            name: heapless::String<64>,
            domains: u32,
            caps: Capabilities,
        }
        postcard::from_bytes(raw).ok().or_else(|| {
            let Before { name, domains, caps } = postcard::from_bytes(raw).ok()?;
            Some(AppRecord { name, domains, caps, quota: AppQuota::DEFAULT })
        })
    }
}

fn app_key(fp: &[u8; 32]) -> Vec<u8> {
    let mut k = b"app:".to_vec();
    k.extend_from_slice(fp);
    k
}

/// Capabilities that use the private or secret half and so need the password: of a key pair,
/// those of its private half (encrypting and verifying use the public half, which anyone
/// who sees the key can export); of a secret key, every use of the secret.
fn private_use(alg: KeyAlg) -> u32 {
    let private_half = Capabilities::SIGN.0 | Capabilities::DECRYPT.0 | Capabilities::UNWRAP.0 | Capabilities::DERIVE.0;
    if alg.is_asymmetric() { private_half } else { private_half | Capabilities::MAC.0 | Capabilities::ENCRYPT.0 }
}

impl<P: Platform> Hsm<P> {
    /// The stored record of `label`: from the RAM copy kept beside the key cache, or read and
    /// decoded from flash (then kept). Every write goes through [`Hsm::save_record`] and every
    /// removal clears the copy, so it never disagrees with the store.
    pub(super) fn load_record(&mut self, label: &Label) -> Result<KeyRecord, Error> {
        if let Some(rec) = self.records.get(label) {
            return Ok(rec.clone());
        }
        let raw = self.sealed_get(&store_key(label))?.ok_or(Error::UnknownKey)?;
        let rec: KeyRecord = postcard::from_bytes(&raw).map_err(|_| Error::Internal("key record decoding"))?;
        if self.records.len() >= CACHE_MAX {
            self.records.pop_first();
        }
        self.records.insert(label.clone(), rec.clone());
        Ok(rec)
    }

    /// Write the record of `label`; a new record of an application only within its quota
    /// (`QuotaExceeded`, nothing written), and counted in its usage.
    pub(super) fn save_record(&mut self, label: &Label, rec: &KeyRecord) -> Result<(), Error> {
        let value = postcard::to_allocvec(rec).map_err(|_| Error::Internal("key record encoding"))?;
        let key = store_key(label);
        let before = self.store.as_ref().ok_or(Error::Device("no store"))?.footprint(&key);
        if before.is_none() {
            self.admit_new_record(&rec.owner, label, value.len())?;
        }
        // Drop the copy first: if the write fails, the next read goes to flash.
        self.records.remove(label);
        self.sealed_put(&key, Some(&value))?;
        let after = self.store.as_ref().ok_or(Error::Device("no store"))?.footprint(&key);
        self.note_usage(&rec.owner, before, after);
        Ok(())
    }

    /// The application's record, authenticated; one that fails its check is no registration.
    pub(super) fn app(&self, principal: &Principal) -> Option<AppRecord> {
        let Principal::Application { cert_sha256 } = principal else { return None };
        let raw = self.sealed_peek(&app_key(cert_sha256))?;
        AppRecord::decode(&raw)
    }

    pub(super) fn register_app(&mut self, fp: [u8; 32], app: &AppRecord) -> Result<(), Error> {
        let value = postcard::to_allocvec(app).map_err(|_| Error::Internal("application record encoding"))?;
        self.sealed_put(&app_key(&fp), Some(&value)).map(drop)
    }

    /// May `principal` see this key at all, and with which of its capabilities?
    pub(super) fn rights(&self, principal: &Principal, rec: &KeyRecord) -> Option<Capabilities> {
        // A revoked certificate owns nothing any more.
        if self.revoked(principal) {
            return None;
        }
        if &rec.owner == principal {
            return Some(rec.caps);
        }
        let app = self.app(principal)?;
        (app.domains & rec.domains != 0).then_some(Capabilities(rec.caps.0 & app.caps.0))
    }

    /// The record of `label` if `principal` may see it; foreign keys are unknown (audited).
    pub(super) fn visible(&mut self, principal: &Principal, label: &Label) -> Result<(KeyRecord, Capabilities), Error> {
        let rec = self.load_record(label)?;
        match self.rights(principal, &rec) {
            Some(caps) => Ok((rec, caps)),
            None => {
                self.log(
                    Some(principal.clone()),
                    AuditEvent::Denied { request: u8::MAX, status: Error::AccessDenied.status() },
                );
                Err(Error::UnknownKey)
            }
        }
    }

    /// Check every rule for using `label` with `need`, load the key into the cache and
    /// return its record.
    pub(super) fn use_key(
        &mut self,
        principal: &Principal,
        session: u64,
        label: &Label,
        need: Capabilities,
    ) -> Result<KeyRecord, Error> {
        let (rec, caps) = self.visible(principal, label)?;
        if !caps.contains(need) {
            return Err(self.deny(principal, u8::MAX, Error::AccessDenied));
        }
        let private = need.0 & private_use(rec.alg) != 0;
        if rec.password.is_some() && private {
            let s = self.sessions.get(session, principal)?;
            if !s.authorized.contains(label) {
                return Err(Error::PasswordRequired);
            }
        }
        // Encrypting with a stored key pair goes through the loaded key too (its tables).
        if private || need.contains(Capabilities::ENCRYPT) || !rec.alg.is_asymmetric() {
            self.ensure_loaded(label, &rec)?;
        }
        Ok(rec)
    }

    pub(super) fn ensure_loaded(&mut self, label: &Label, rec: &KeyRecord) -> Result<(), Error> {
        if self.cache.contains_key(label) {
            return Ok(());
        }
        let State::Operational(wrapper) = &self.state else { return Err(Error::Device("not operational")) };
        let der =
            wrapper.unwrap(&rec.aad(label), &rec.wrapped).map_err(|_| Error::Internal("key record does not unwrap"))?;
        let key = keys::load(rec.alg, &der)?;
        if self.cache.len() >= CACHE_MAX {
            self.cache.pop_first();
        }
        self.cache.insert(label.clone(), key);
        Ok(())
    }

    /// Set a new access password (owner or local tools); clears the failure counter.
    pub(super) fn set_password(&mut self, principal: &Principal, label: &Label, password: &[u8]) -> Result<(), Error> {
        if password.len() < 8 {
            return Err(Error::Invalid("password shorter than 8 bytes"));
        }
        let (mut rec, _) = self.visible(principal, label)?;
        if &rec.owner != principal && *principal != Principal::Local {
            return Err(self.deny(principal, u8::MAX, Error::AccessDenied));
        }
        let mut salt = [0u8; 16];
        self.rng.fill(&mut salt)?;
        let hash = keys::pbkdf2_sm3(password, &salt, PBKDF2_ITERATIONS)?;
        rec.password = Some(PasswordRecord { salt, hash, failures: 0 });
        self.save_record(label, &rec)?;
        self.sessions.revoke(label);
        Ok(())
    }

    /// Prove the access password for this session. The failure counter is written before
    /// the comparison, so cutting power during a guess still counts it.
    pub(super) fn authorize(
        &mut self,
        principal: &Principal,
        session: u64,
        label: &Label,
        password: &[u8],
    ) -> Result<(), Error> {
        let (mut rec, caps) = self.visible(principal, label)?;
        // Only who could use the protected half may spend its tries.
        if caps.0 & private_use(rec.alg) == 0 {
            return Err(self.deny(principal, u8::MAX, Error::AccessDenied));
        }
        let Some(mut pw) = rec.password.clone() else { return Err(Error::Invalid("key has no password")) };
        if pw.failures >= MAX_PASSWORD_FAILURES {
            return Err(self.deny(principal, u8::MAX, Error::KeyLocked));
        }
        pw.failures += 1;
        rec.password = Some(pw.clone());
        self.save_record(label, &rec)?;
        let candidate = keys::pbkdf2_sm3(password, &pw.salt, PBKDF2_ITERATIONS)?;
        if bool::from(candidate.ct_eq(&pw.hash)) {
            pw.failures = 0;
            rec.password = Some(pw);
            self.save_record(label, &rec)?;
            self.sessions.get(session, principal)?.authorized.insert(label.clone());
            Ok(())
        } else {
            let status = if pw.failures >= MAX_PASSWORD_FAILURES { Error::KeyLocked } else { Error::WrongPassword };
            Err(self.deny(principal, u8::MAX, status))
        }
    }
}
