//! The device master key in tamper RAM: layout, load, store, zeroize.
//!
//! Layout (64 bytes): `"GMDK"` ‖ version (2) ‖ [`Mode`] ‖ 2 zero bytes ‖ DMK (32) ‖
//! SM3(first 40 bytes)[..8] ‖ zero padding. All zeros means "no key" (factory state or
//! zeroized by tamper). The mode says how the card was initialized, so that no flash content
//! can turn a ceremony-initialized card into a demo card (see `hsm/admin.rs`). A version-1
//! slot (written before flash records were authenticated) is reported as [`Slot::Legacy`].

use gmhsm_platform::TamperRam;
use sm3::{Digest, Sm3};
use zeroize::Zeroizing;

pub const RAM_LEN: usize = 64;
const MAGIC: &[u8; 4] = b"GMDK";
const VERSION: u8 = 2;

/// How the card was initialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// By [`crate::Hsm::initialize`]: no admin cards, local tools administer alone.
    Demo = 1,
    /// By the init ceremony: administration needs the admin cards' quorum.
    Ceremony = 2,
}

/// What tamper RAM holds.
pub enum Slot {
    Empty,
    Key(Zeroizing<[u8; 32]>, Mode),
    /// A well-formed slot of the first format, which had no mode and whose flash records
    /// carry no authentication: not accepted (zeroize and initialize again).
    Legacy,
    /// Neither empty nor a valid key: corrupted.
    Corrupt,
}

pub fn load<T: TamperRam>(t: &mut T) -> Slot {
    let mut buf = Zeroizing::new([0u8; RAM_LEN]);
    if T::SIZE < RAM_LEN || t.read(&mut buf[..]).is_err() {
        return Slot::Corrupt;
    }
    if buf.iter().all(|&b| b == 0) {
        return Slot::Empty;
    }
    let check = Sm3::digest(&buf[..40]);
    if &buf[..4] != MAGIC || buf[40..48] != check[..8] {
        return Slot::Corrupt;
    }
    let mode = match (buf[4], buf[5]) {
        (1, _) => return Slot::Legacy,
        (VERSION, 1) => Mode::Demo,
        (VERSION, 2) => Mode::Ceremony,
        _ => return Slot::Corrupt,
    };
    let mut k = Zeroizing::new([0u8; 32]);
    k.copy_from_slice(&buf[8..40]);
    Slot::Key(k, mode)
}

pub fn store<T: TamperRam>(t: &mut T, dmk: &[u8; 32], mode: Mode) -> Result<(), ()> {
    let mut buf = Zeroizing::new([0u8; RAM_LEN]);
    buf[..4].copy_from_slice(MAGIC);
    buf[4] = VERSION;
    buf[5] = mode as u8;
    buf[8..40].copy_from_slice(dmk);
    let check = Sm3::digest(&buf[..40]);
    buf[40..48].copy_from_slice(&check[..8]);
    t.write(&buf[..]).map_err(|_| ())
}

pub fn zeroize<T: TamperRam>(t: &mut T) -> Result<(), ()> {
    t.write(&[0u8; RAM_LEN]).map_err(|_| ())
}
