//! The device master key sealed to the board's TPM 2.0, and the rollback register in a TPM NV
//! index (`tss-esapi` over tpm2-tss; any TCTI: `device:/dev/tpmrm0`, swtpm in tests).
//!
//! * RAM: a sealed data object (keyed-hash, `fixedTPM`, `fixedParent`, `noDA`) created under a
//!   primary ECC P-256 storage key of the owner hierarchy and made persistent at the
//!   configured handle; reading it is `TPM2_Unseal`. Nothing of it is on disk. A write evicts
//!   the old object and persists a new one; no object at the handle reads as zeros.
//! * Register: an owner-read/write NV index of [`REGISTER_SIZE`] bytes; `TPM2_NV_Write` of the
//!   whole index is atomic in the TPM.
//! * Zeroize: evict the object, write zeros to the register. The card's own zeroization (a
//!   RAM write of zeros) evicts the object too: no sealed zeros are left in the TPM.
//!
//! Owner authorization is the empty password (the TPM's default); a board that sets an owner
//! password needs a build that passes it.

use std::str::FromStr;

use gmhsm_platform::TamperError;
use tss_esapi::Context;
use tss_esapi::attributes::{NvIndexAttributesBuilder, ObjectAttributesBuilder};
use tss_esapi::constants::CapabilityType;
use tss_esapi::handles::{KeyHandle, NvIndexHandle, NvIndexTpmHandle, ObjectHandle, PersistentTpmHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::dynamic_handles::Persistent;
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::{Hierarchy, NvAuth, Provision};
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    CapabilityData, EccPoint, KeyedHashScheme, MaxNvBuffer, NvPublicBuilder, Public, PublicBuilder,
    PublicEccParametersBuilder, PublicKeyedHashParameters, SensitiveData, SymmetricDefinitionObject,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use zeroize::Zeroizing;

use crate::BoardError;

pub const RAM_SIZE: usize = 64;
pub const REGISTER_SIZE: usize = 96;

pub struct TpmStore {
    ctx: Context,
    ram: PersistentTpmHandle,
    register: NvIndexTpmHandle,
    /// ESYS objects for the key and the index, kept for the context's life: ESYS tracks the
    /// names it has seen per TPM handle, and re-reading a handle it still knows fails.
    ram_tr: Option<ObjectHandle>,
    nv_tr: Option<NvIndexHandle>,
}

type TpmResult<T> = tss_esapi::Result<T>;

fn tpm_err(what: &str, e: impl std::fmt::Display) -> BoardError {
    BoardError::Tpm(format!("{what}: {e}"))
}

impl TpmStore {
    /// Connect through `tcti`; define the register's NV index (zeros) if it does not exist.
    pub fn open(tcti: &str, ram_handle: u32, register_index: u32) -> Result<Self, BoardError> {
        let conf = TctiNameConf::from_str(tcti).map_err(|e| tpm_err(&format!("TCTI {tcti:?}"), e))?;
        let ctx = Context::new(conf).map_err(|e| tpm_err(&format!("cannot connect to the TPM at {tcti:?}"), e))?;
        let ram = PersistentTpmHandle::new(ram_handle).map_err(|e| tpm_err("ram_handle", e))?;
        let register = NvIndexTpmHandle::new(register_index).map_err(|e| tpm_err("register_index", e))?;
        let mut store = Self { ctx, ram, register, ram_tr: None, nv_tr: None };
        if !store.present(register_index).map_err(|e| tpm_err("listing NV indices", e))? {
            store.define_register().map_err(|e| tpm_err("defining the register's NV index", e))?;
        }
        Ok(store)
    }

    /// Whether a handle (persistent object or NV index) exists in the TPM.
    fn present(&mut self, handle: u32) -> TpmResult<bool> {
        let (data, _) = self.ctx.get_capability(CapabilityType::Handles, handle, 1)?;
        Ok(matches!(data, CapabilityData::Handles(list) if list.iter().any(|h| u32::from(*h) == handle)))
    }

    fn define_register(&mut self) -> TpmResult<()> {
        let attributes =
            NvIndexAttributesBuilder::new().with_owner_write(true).with_owner_read(true).with_no_da(true).build()?;
        let public = NvPublicBuilder::new()
            .with_nv_index(self.register)
            .with_index_name_algorithm(HashingAlgorithm::Sha256)
            .with_index_attributes(attributes)
            .with_data_area_size(REGISTER_SIZE)
            .build()?;
        self.ctx
            .execute_with_session(Some(AuthSession::Password), |c| c.nv_define_space(Provision::Owner, None, public))?;
        self.nv_write(&[0u8; REGISTER_SIZE])
    }

    fn nv_handle(&mut self) -> TpmResult<NvIndexHandle> {
        if let Some(h) = self.nv_tr {
            return Ok(h);
        }
        let obj = self.ctx.execute_without_session(|c| c.tr_from_tpm_public(TpmHandle::NvIndex(self.register)))?;
        self.nv_tr = Some(NvIndexHandle::from(obj));
        Ok(NvIndexHandle::from(obj))
    }

    /// The key object's ESYS handle (the object must exist).
    fn ram_handle(&mut self) -> TpmResult<ObjectHandle> {
        if let Some(h) = self.ram_tr {
            return Ok(h);
        }
        let obj = self.ctx.execute_without_session(|c| c.tr_from_tpm_public(TpmHandle::Persistent(self.ram)))?;
        self.ram_tr = Some(obj);
        Ok(obj)
    }

    fn nv_write(&mut self, data: &[u8]) -> TpmResult<()> {
        let nv = self.nv_handle()?;
        let buf = MaxNvBuffer::try_from(data.to_vec())?;
        self.ctx.execute_with_session(Some(AuthSession::Password), |c| c.nv_write(NvAuth::Owner, nv, buf, 0))
    }

    pub fn read_register(&mut self, out: &mut [u8]) -> Result<(), TamperError> {
        if out.len() != REGISTER_SIZE {
            return Err(TamperError::Io);
        }
        let r = (|| {
            let nv = self.nv_handle()?;
            self.ctx.execute_with_session(Some(AuthSession::Password), |c| {
                c.nv_read(NvAuth::Owner, nv, REGISTER_SIZE as u16, 0)
            })
        })();
        let data = r.map_err(|e| io("NV read of the register", e))?;
        if data.len() != REGISTER_SIZE {
            return Err(io("NV read of the register", format!("{} bytes", data.len())));
        }
        out.copy_from_slice(&data);
        Ok(())
    }

    pub fn write_register(&mut self, data: &[u8]) -> Result<(), TamperError> {
        if data.len() != REGISTER_SIZE {
            return Err(TamperError::Io);
        }
        self.nv_write(data).map_err(|e| io("NV write of the register", e))
    }

    /// Unseal the key object; zeros if there is none.
    pub fn read_ram(&mut self, out: &mut [u8]) -> Result<(), TamperError> {
        if out.len() != RAM_SIZE {
            return Err(TamperError::Io);
        }
        if !self.present(self.ram.into()).map_err(|e| io("listing persistent objects", e))? {
            self.forget_ram();
            out.fill(0);
            return Ok(());
        }
        let r = (|| {
            let obj = self.ram_handle()?;
            self.ctx.execute_with_session(Some(AuthSession::Password), |c| c.unseal(obj))
        })();
        let data = Zeroizing::new(r.map_err(|e| io("unseal", e))?.value().to_vec());
        if data.len() != RAM_SIZE {
            return Err(io("unseal", format!("sealed object holds {} bytes", data.len())));
        }
        out.copy_from_slice(&data);
        Ok(())
    }

    /// Seal `data` as the new key object (the old one evicted first). All zeros (the card's
    /// own zeroization) evicts the object and seals nothing.
    pub fn write_ram(&mut self, data: &[u8]) -> Result<(), TamperError> {
        if data.len() != RAM_SIZE {
            return Err(TamperError::Io);
        }
        self.evict().map_err(|e| io("evicting the old sealed key", e))?;
        if data.iter().all(|&b| b == 0) {
            return Ok(());
        }
        self.seal(data).map_err(|e| io("sealing the key", e))
    }

    /// Whether a sealed key object is at the configured handle.
    pub fn holds_key(&mut self) -> Result<bool, BoardError> {
        self.present(self.ram.into()).map_err(|e| tpm_err("listing persistent objects", e))
    }

    /// Drop the cached handle of a key object that is gone (evicted by another context).
    fn forget_ram(&mut self) {
        if let Some(mut h) = self.ram_tr.take() {
            let _ = self.ctx.tr_close(&mut h);
        }
    }

    fn evict(&mut self) -> TpmResult<()> {
        if !self.present(self.ram.into())? {
            self.forget_ram();
            return Ok(());
        }
        let obj = self.ram_handle()?;
        let persistent = Persistent::Persistent(self.ram);
        self.ctx.execute_with_session(Some(AuthSession::Password), |c| {
            c.evict_control(Provision::Owner, obj, persistent)
        })?;
        self.ram_tr = None;
        Ok(())
    }

    fn seal(&mut self, data: &[u8]) -> TpmResult<()> {
        let sensitive = SensitiveData::try_from(data.to_vec())?;
        let (primary_pub, sealed_pub) = (primary_template()?, sealed_template()?);
        let persistent = Persistent::Persistent(self.ram);
        let made = self.ctx.execute_with_session(Some(AuthSession::Password), |c| {
            let primary = c.create_primary(Hierarchy::Owner, primary_pub, None, None, None, None)?.key_handle;
            let r = (|| {
                let created = c.create(primary, sealed_pub, None, Some(sensitive), None, None)?;
                let loaded: KeyHandle = c.load(primary, created.out_private, created.out_public)?;
                let r = c.evict_control(Provision::Owner, loaded.into(), persistent);
                c.flush_context(loaded.into())?;
                r
            })();
            c.flush_context(primary.into())?;
            r
        })?;
        self.ram_tr = Some(made);
        Ok(())
    }

    /// Evict the key and clear the register.
    pub fn zeroize(&mut self) -> Result<(), TamperError> {
        self.evict().map_err(|e| io("evicting the sealed key", e))?;
        self.nv_write(&[0u8; REGISTER_SIZE]).map_err(|e| io("clearing the register", e))
    }
}

fn io(what: &str, e: impl std::fmt::Display) -> TamperError {
    log::error!("TPM: {what}: {e}");
    TamperError::Io
}

/// The owner hierarchy's storage primary: ECC P-256, restricted decryption, AES-128-CFB.
fn primary_template() -> TpmResult<Public> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_restricted(true)
        .with_decrypt(true)
        .with_no_da(true)
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new_restricted_decryption_key(
                SymmetricDefinitionObject::AES_128_CFB,
                EccCurve::NistP256,
            )
            .build()?,
        )
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
}

/// The sealed key: a keyed-hash data object bound to this TPM.
fn sealed_template() -> TpmResult<Public> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_no_da(true)
        .with_user_with_auth(true)
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Default::default())
        .build()
}
