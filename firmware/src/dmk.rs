//! The device master key in tamper RAM: layout, load, store, zeroize.
//!
//! Layout (64 bytes): `"GMDK"` ‖ version (1) ‖ 3 zero bytes ‖ DMK (32) ‖ SM3(first 40 bytes)[..8]
//! ‖ zero padding. All zeros means "no key" (factory state or zeroized by tamper).

use gmhsm_platform::TamperRam;
use sm3::{Digest, Sm3};
use zeroize::Zeroizing;

pub const RAM_LEN: usize = 64;
const MAGIC: &[u8; 4] = b"GMDK";

/// What tamper RAM holds.
pub enum Slot {
    Empty,
    Key(Zeroizing<[u8; 32]>),
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
    if &buf[..4] != MAGIC || buf[4] != 1 || buf[40..48] != check[..8] {
        return Slot::Corrupt;
    }
    let mut k = Zeroizing::new([0u8; 32]);
    k.copy_from_slice(&buf[8..40]);
    Slot::Key(k)
}

pub fn store<T: TamperRam>(t: &mut T, dmk: &[u8; 32]) -> Result<(), ()> {
    let mut buf = Zeroizing::new([0u8; RAM_LEN]);
    buf[..4].copy_from_slice(MAGIC);
    buf[4] = 1;
    buf[8..40].copy_from_slice(dmk);
    let check = Sm3::digest(&buf[..40]);
    buf[40..48].copy_from_slice(&check[..8]);
    t.write(&buf[..]).map_err(|_| ())
}

pub fn zeroize<T: TamperRam>(t: &mut T) -> Result<(), ()> {
    t.write(&[0u8; RAM_LEN]).map_err(|_| ())
}
