//! Tamper RAM (the device master key) and the rollback register: a battery-backed nvmem cell
//! ([`NvmemCell`]) or the board's TPM 2.0 ([`TpmStore`]), each optionally watched by a tamper
//! switch on a GPIO line ([`TamperSwitch`]) that zeroizes it.

pub mod nvmem;
pub mod switch;
pub mod tpm;

use std::sync::{Arc, Mutex};

use gmhsm_platform::{TamperError, TamperRam};

pub use nvmem::NvmemCell;
pub use switch::{EdgeSource, GpioLine, TamperSwitch};
pub use tpm::TpmStore;

use crate::BoardError;
use crate::config::{SwitchConfig, TamperConfig};

/// Where the key and the register live.
pub enum SecretStore {
    Nvmem(NvmemCell),
    Tpm(TpmStore),
}

impl SecretStore {
    pub fn open(cfg: &TamperConfig) -> Result<Self, BoardError> {
        Ok(match cfg {
            TamperConfig::Nvmem { path, offset, .. } => SecretStore::Nvmem(NvmemCell::open(path, *offset)?),
            TamperConfig::Tpm { tcti, ram_handle, register_index, .. } => {
                SecretStore::Tpm(TpmStore::open(tcti, *ram_handle, *register_index)?)
            }
        })
    }

    pub fn zeroize(&mut self) -> Result<(), TamperError> {
        match self {
            SecretStore::Nvmem(c) => c.zeroize(),
            SecretStore::Tpm(t) => t.zeroize(),
        }
    }
}

/// The configured tamper RAM with its switch.
pub struct BoardTamper {
    store: Arc<Mutex<SecretStore>>,
    switch: Option<TamperSwitch>,
}

fn switch_of(cfg: &TamperConfig) -> Option<&SwitchConfig> {
    match cfg {
        TamperConfig::Nvmem { switch, .. } | TamperConfig::Tpm { switch, .. } => switch.as_ref(),
    }
}

impl BoardTamper {
    /// Open the store and, if configured, the switch's GPIO line.
    pub fn open(cfg: &TamperConfig) -> Result<Self, BoardError> {
        let source = switch_of(cfg).map(GpioLine::open).transpose()?;
        Self::with_source(SecretStore::open(cfg)?, source)
    }

    /// `store` watched by `source` (a GPIO line, or any other edge source), if any.
    pub fn with_source<S: EdgeSource>(store: SecretStore, source: Option<S>) -> Result<Self, BoardError> {
        let store = Arc::new(Mutex::new(store));
        let switch = match source {
            Some(source) => {
                let watched = store.clone();
                Some(TamperSwitch::watch(source, move || {
                    let mut s = watched.lock().map_err(|_| "tamper store lock poisoned".to_string())?;
                    s.zeroize().map_err(|e| format!("{e:?}"))
                })?)
            }
            None => None,
        };
        Ok(Self { store, switch })
    }

    fn with<T>(&self, f: impl FnOnce(&mut SecretStore) -> Result<T, TamperError>) -> Result<T, TamperError> {
        let mut s = self.store.lock().map_err(|_| TamperError::Io)?;
        f(&mut s)
    }
}

impl TamperRam for BoardTamper {
    const SIZE: usize = nvmem::RAM_SIZE;
    const REGISTER_SIZE: usize = nvmem::REGISTER_SIZE;

    fn read(&mut self, out: &mut [u8]) -> Result<(), TamperError> {
        self.with(|s| match s {
            SecretStore::Nvmem(c) => c.read_ram(out),
            SecretStore::Tpm(t) => t.read_ram(out),
        })
    }

    fn write(&mut self, data: &[u8]) -> Result<(), TamperError> {
        self.with(|s| match s {
            SecretStore::Nvmem(c) => c.write_ram(data),
            SecretStore::Tpm(t) => t.write_ram(data),
        })
    }

    fn tamper_event(&mut self) -> bool {
        self.switch.as_ref().is_some_and(TamperSwitch::take)
    }

    fn read_register(&mut self, out: &mut [u8]) -> Result<(), TamperError> {
        self.with(|s| match s {
            SecretStore::Nvmem(c) => c.read_register(out),
            SecretStore::Tpm(t) => t.read_register(out),
        })
    }

    fn write_register(&mut self, data: &[u8]) -> Result<(), TamperError> {
        self.with(|s| match s {
            SecretStore::Nvmem(c) => c.write_register(data),
            SecretStore::Tpm(t) => t.write_register(data),
        })
    }
}

const _: () = assert!(nvmem::RAM_SIZE == tpm::RAM_SIZE && nvmem::REGISTER_SIZE == tpm::REGISTER_SIZE);
