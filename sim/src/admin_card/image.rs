//! The virtual card's persistent memory (its EEPROM): what survives power-off, encoded as
//! TLVs and written to a file atomically (temp file, fsync, rename, fsync of the folder).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use gmhsm_icc::spec::{self, CardState};
use gmhsm_icc::tlv;
use zeroize::Zeroizing;

const MAGIC: &[u8] = b"GMHSM-SIMCARD-1\0";

mod t {
    pub const LIFECYCLE: u16 = 0x01;
    pub const SERIAL: u16 = 0x02;
    pub const ROLE: u16 = 0x03;
    pub const RETRIES: u16 = 0x04;
    pub const PIN_SALT: u16 = 0x05;
    pub const PIN_HASH: u16 = 0x06;
    pub const SECRET: u16 = 0x07;
    pub const DOMAIN_KEY: u16 = 0x08;
    pub const SHARE: u16 = 0x09;
}

/// Everything the card keeps across power cycles.
///
/// Invariants: `lifecycle` is never `Locked` (locked = PIN set and `retries_left == 0`);
/// `pin_hash` is set iff `lifecycle >= PinSet`; `secret` is set iff `Operational`;
/// `retries_left <= retry_limit`.
#[derive(Clone)]
pub(crate) struct Image {
    pub lifecycle: CardState,
    pub serial: Vec<u8>,
    pub role: u8,
    pub retry_limit: u8,
    pub retries_left: u8,
    pub pin_salt: [u8; 16],
    pub pin_hash: Option<Zeroizing<[u8; 32]>>,
    pub secret: Option<Zeroizing<[u8; 32]>>,
    pub domain_key: Option<[u8; spec::SM2_POINT_LEN]>,
    pub share: Option<Zeroizing<Vec<u8>>>,
}

/// Why an image file could not be used.
#[derive(Debug)]
pub enum ImageError {
    Io(std::io::Error),
    /// The file is not a card image or breaks an invariant; the card is unusable.
    Corrupt,
}

impl std::fmt::Display for ImageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageError::Io(e) => write!(f, "card image: {e}"),
            ImageError::Corrupt => f.write_str("card image corrupt"),
        }
    }
}

impl std::error::Error for ImageError {}

impl Image {
    pub fn blank() -> Image {
        Image {
            lifecycle: CardState::Blank,
            serial: Vec::new(),
            role: 0,
            retry_limit: 0,
            retries_left: 0,
            pin_salt: [0; 16],
            pin_hash: None,
            secret: None,
            domain_key: None,
            share: None,
        }
    }

    /// The state reported to the outside (`C3`).
    pub fn state(&self) -> CardState {
        match self.lifecycle {
            CardState::PinSet | CardState::Operational if self.retries_left == 0 => CardState::Locked,
            s => s,
        }
    }

    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut v = Zeroizing::new(MAGIC.to_vec());
        tlv::put(&mut v, t::LIFECYCLE, &[self.lifecycle as u8]);
        tlv::put(&mut v, t::SERIAL, &self.serial);
        tlv::put(&mut v, t::ROLE, &[self.role]);
        tlv::put(&mut v, t::RETRIES, &[self.retries_left, self.retry_limit]);
        tlv::put(&mut v, t::PIN_SALT, &self.pin_salt);
        if let Some(h) = &self.pin_hash {
            tlv::put(&mut v, t::PIN_HASH, &h[..]);
        }
        if let Some(s) = &self.secret {
            tlv::put(&mut v, t::SECRET, &s[..]);
        }
        if let Some(k) = &self.domain_key {
            tlv::put(&mut v, t::DOMAIN_KEY, k);
        }
        if let Some(s) = &self.share {
            tlv::put(&mut v, t::SHARE, s);
        }
        v
    }

    pub fn decode(b: &[u8]) -> Result<Image, ImageError> {
        let body = b.strip_prefix(MAGIC).ok_or(ImageError::Corrupt)?;
        tlv::check(
            body,
            &[
                t::LIFECYCLE,
                t::SERIAL,
                t::ROLE,
                t::RETRIES,
                t::PIN_SALT,
                t::PIN_HASH,
                t::SECRET,
                t::DOMAIN_KEY,
                t::SHARE,
            ],
        )
        .map_err(|_| ImageError::Corrupt)?;
        let get = |tag| tlv::find(body, tag).map_err(|_| ImageError::Corrupt);
        let need = |tag| get(tag)?.ok_or(ImageError::Corrupt);
        let arr = |v: &[u8]| -> Result<[u8; 32], ImageError> { v.try_into().map_err(|_| ImageError::Corrupt) };
        let lifecycle = match need(t::LIFECYCLE)? {
            [b] => CardState::from_byte(*b).filter(|s| *s != CardState::Locked).ok_or(ImageError::Corrupt)?,
            _ => return Err(ImageError::Corrupt),
        };
        let (retries_left, retry_limit) = match need(t::RETRIES)? {
            [l, m] if l <= m => (*l, *m),
            _ => return Err(ImageError::Corrupt),
        };
        let role = match need(t::ROLE)? {
            [r] => *r,
            _ => return Err(ImageError::Corrupt),
        };
        let img = Image {
            lifecycle,
            serial: need(t::SERIAL)?.to_vec(),
            role,
            retry_limit,
            retries_left,
            pin_salt: need(t::PIN_SALT)?.try_into().map_err(|_| ImageError::Corrupt)?,
            pin_hash: get(t::PIN_HASH)?.map(arr).transpose()?.map(Zeroizing::new),
            secret: get(t::SECRET)?.map(arr).transpose()?.map(Zeroizing::new),
            domain_key: get(t::DOMAIN_KEY)?.map(|k| k.try_into().map_err(|_| ImageError::Corrupt)).transpose()?,
            share: get(t::SHARE)?.map(|s| Zeroizing::new(s.to_vec())),
        };
        let pin_set = matches!(img.lifecycle, CardState::PinSet | CardState::Operational);
        if img.pin_hash.is_some() != pin_set || img.secret.is_some() != (img.lifecycle == CardState::Operational) {
            return Err(ImageError::Corrupt);
        }
        Ok(img)
    }
}

/// Where the image lives.
pub(crate) enum Storage {
    Memory,
    File(PathBuf),
}

impl Storage {
    pub fn load(path: &Path) -> Result<Option<Image>, ImageError> {
        match fs::read(path) {
            Ok(b) => {
                let b = Zeroizing::new(b);
                Image::decode(&b).map(Some)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ImageError::Io(e)),
        }
    }

    /// Write `img` so that a crash leaves either the old or the new file.
    pub fn save(&self, img: &Image) -> Result<(), ImageError> {
        let Storage::File(path) = self else {
            return Ok(());
        };
        let bytes = img.encode();
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let write = || -> std::io::Result<()> {
            let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, path)?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(ImageError::Io)
    }
}
