//! SM4 (GB/T 32907) in ECB, CBC, CFB-128, OFB, CTR and GCM, and as CBC-MAC and CMAC, each
//! one-shot and as a multi-part context (`new` / `update` → output / `finalize`) that a
//! session keeps between requests.
//!
//! The block cipher is `gmhsm-sm4` (constant time: no table lookups; GFNI, AES-NI or a
//! bitsliced circuit chosen at run time), and the modes are the `ecb`, `cbc`, `cfb-mode`,
//! `ofb`, `ctr`, `cmac` and `aes-gcm` crates (`AesGcm<Sm4, U12>` is SM4-GCM). Written here:
//! the buffering of partial blocks between `update` calls, PKCS#7 padding (ECB and CBC
//! only; the other modes take any length), the IV or nonce carried at the front of the
//! ciphertext ([`IvPlace::InData`]: written there when encrypting with a fresh one, read from
//! there when decrypting), and CBC-MAC with the zero IV (the last block of CBC encryption,
//! as SDF_CalculateMAC computes it; the input must be whole blocks).
//!
//! GCM has no multi-part API in its crate and must not release plaintext before the tag is
//! checked, so [`Sm4GcmCtx`] buffers its input (up to [`MAX_GCM_LEN`]) and works at
//! `finalize`.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use cmac::Mac;
use gmhsm_sm4::Sm4;
use gmhsm_sm4::cipher::array::Array;
use gmhsm_sm4::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit, StreamCipher};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::AlgError;
use alloc::vec::Vec;

pub const KEY_LEN: usize = 16;
pub const BLOCK_LEN: usize = 16;
/// GCM nonce length (96 bits, the only length offered).
pub const GCM_NONCE_LEN: usize = 12;
pub const GCM_TAG_LEN: usize = 16;
/// Most data one GCM context buffers.
pub const MAX_GCM_LEN: usize = 1 << 20;

type Out = Zeroizing<Vec<u8>>;

/// A confidentiality mode and its IV (16 bytes; for CTR the initial counter block).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Ecb,
    Cbc([u8; BLOCK_LEN]),
    Cfb([u8; BLOCK_LEN]),
    Ofb([u8; BLOCK_LEN]),
    Ctr([u8; BLOCK_LEN]),
}

impl Mode {
    /// The IV (`None` for ECB).
    pub fn iv(&self) -> Option<[u8; BLOCK_LEN]> {
        match *self {
            Mode::Ecb => None,
            Mode::Cbc(iv) | Mode::Cfb(iv) | Mode::Ofb(iv) | Mode::Ctr(iv) => Some(iv),
        }
    }

    /// The same mode with another IV (ECB stays ECB).
    pub fn with_iv(self, iv: [u8; BLOCK_LEN]) -> Mode {
        match self {
            Mode::Ecb => Mode::Ecb,
            Mode::Cbc(_) => Mode::Cbc(iv),
            Mode::Cfb(_) => Mode::Cfb(iv),
            Mode::Ofb(_) => Mode::Ofb(iv),
            Mode::Ctr(_) => Mode::Ctr(iv),
        }
    }
}

/// Where a context's IV (GCM: nonce) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IvPlace {
    /// In the mode, given by the caller: input and output are the data alone.
    Given,
    /// At the front of the ciphertext: encryption writes the mode's IV (a fresh one the card
    /// drew) before its output; decryption reads the IV from the front of its input, and the
    /// mode's IV is only a placeholder.
    InData,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Encrypt,
    Decrypt,
}

/// Padding for ECB and CBC; the stream-like modes accept only [`Padding::None`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// The total length must be a multiple of 16 (ECB, CBC); any length otherwise.
    None,
    /// PKCS#7: 1–16 bytes of value n appended on encryption, checked and removed on decryption.
    Pkcs7,
}

enum State {
    EcbEnc(ecb::Encryptor<Sm4>),
    EcbDec(ecb::Decryptor<Sm4>),
    CbcEnc(cbc::Encryptor<Sm4>),
    CbcDec(cbc::Decryptor<Sm4>),
    CfbEnc(cfb_mode::BufEncryptor<Sm4>),
    CfbDec(cfb_mode::BufDecryptor<Sm4>),
    Ofb(ofb::Ofb<Sm4>),
    Ctr(ctr::Ctr128BE<Sm4>),
    /// Decryption with [`IvPlace::InData`] before the first block of input (the IV) came in.
    AwaitIv {
        key: Zeroizing<[u8; KEY_LEN]>,
        mode: Mode,
    },
}

/// A multi-part SM4 encryption or decryption in one of the confidentiality modes.
pub struct Sm4Ctx {
    state: State,
    padding: Padding,
    /// Bytes not yet processed: in block modes less than a block, or, when decrypting with
    /// PKCS#7, up to one whole block held back until `finalize`; while the IV is awaited, the
    /// IV's bytes so far.
    pending: Out,
    /// Output owed before any other (the IV, when encrypting with [`IvPlace::InData`]).
    prefix: Out,
}

/// The cipher state for `mode` in `dir` (fixed-size key and IV: cannot fail).
fn state_for(key: &[u8; KEY_LEN], mode: Mode, dir: Direction) -> State {
    use Direction::*;
    let k = Array::from(*key);
    let iv = Array::from(mode.iv().unwrap_or([0; BLOCK_LEN]));
    match (mode, dir) {
        (Mode::Ecb, Encrypt) => State::EcbEnc(KeyInit::new(&k)),
        (Mode::Ecb, Decrypt) => State::EcbDec(KeyInit::new(&k)),
        (Mode::Cbc(_), Encrypt) => State::CbcEnc(KeyIvInit::new(&k, &iv)),
        (Mode::Cbc(_), Decrypt) => State::CbcDec(KeyIvInit::new(&k, &iv)),
        (Mode::Cfb(_), Encrypt) => State::CfbEnc(KeyIvInit::new(&k, &iv)),
        (Mode::Cfb(_), Decrypt) => State::CfbDec(KeyIvInit::new(&k, &iv)),
        (Mode::Ofb(_), _) => State::Ofb(KeyIvInit::new(&k, &iv)),
        (Mode::Ctr(_), _) => State::Ctr(KeyIvInit::new(&k, &iv)),
    }
}

fn key_err<E>(_: E) -> AlgError {
    AlgError::InvalidKey
}

impl Sm4Ctx {
    pub fn new(key: &[u8], mode: Mode, dir: Direction, padding: Padding) -> Result<Self, AlgError> {
        Self::placed(key, mode, dir, padding, IvPlace::Given)
    }

    /// A context whose IV is where `place` says (ECB has none: `InvalidInput` for
    /// [`IvPlace::InData`]).
    pub fn placed(key: &[u8], mode: Mode, dir: Direction, padding: Padding, place: IvPlace) -> Result<Self, AlgError> {
        let key: Zeroizing<[u8; KEY_LEN]> = Zeroizing::new(key.try_into().map_err(key_err)?);
        let block_mode = matches!(mode, Mode::Ecb | Mode::Cbc(_));
        if padding == Padding::Pkcs7 && !block_mode {
            return Err(AlgError::InvalidInput);
        }
        let mut ctx = Self {
            state: state_for(&key, mode, dir),
            padding,
            pending: Zeroizing::new(Vec::new()),
            prefix: Out::default(),
        };
        match (place, mode.iv(), dir) {
            (IvPlace::Given, _, _) => {}
            (IvPlace::InData, None, _) => return Err(AlgError::InvalidInput),
            (IvPlace::InData, Some(iv), Direction::Encrypt) => ctx.prefix = Zeroizing::new(iv.to_vec()),
            (IvPlace::InData, Some(_), Direction::Decrypt) => ctx.state = State::AwaitIv { key, mode },
        }
        Ok(ctx)
    }

    /// Process `data`; returns the output available so far (block modes hold back a partial
    /// block, and when decrypting with PKCS#7 the last whole block).
    pub fn update(&mut self, data: &[u8]) -> Out {
        if let State::AwaitIv { key, mode } = &self.state {
            self.pending.extend_from_slice(data);
            let Some(iv) = self.pending.first_chunk::<BLOCK_LEN>() else { return Out::default() };
            let rest = Zeroizing::new(self.pending[BLOCK_LEN..].to_vec());
            self.state = state_for(key, mode.with_iv(*iv), Direction::Decrypt);
            self.pending.clear();
            return self.update(&rest);
        }
        let mut out = core::mem::take(&mut self.prefix);
        out.extend_from_slice(&self.process(data));
        out
    }

    /// [`Sm4Ctx::update`] without the prefix.
    fn process(&mut self, data: &[u8]) -> Out {
        let mut out = Zeroizing::new(data.to_vec());
        match &mut self.state {
            State::CfbEnc(c) => c.encrypt(&mut out),
            State::CfbDec(c) => c.decrypt(&mut out),
            State::Ofb(c) => c.apply_keystream(&mut out),
            State::Ctr(c) => c.apply_keystream(&mut out),
            _ => {
                self.pending.extend_from_slice(data);
                let mut n = self.pending.len() / BLOCK_LEN * BLOCK_LEN;
                let hold_back = self.padding == Padding::Pkcs7 && self.decrypting();
                if hold_back && n == self.pending.len() {
                    n = n.saturating_sub(BLOCK_LEN);
                }
                let rest = Zeroizing::new(self.pending[n..].to_vec());
                self.pending.truncate(n);
                let mut done = core::mem::replace(&mut self.pending, rest);
                self.blocks(&mut done);
                return done;
            }
        }
        out
    }

    /// Finish: pads and encrypts the last block, or checks and strips the padding.
    /// A partial block without padding is [`AlgError::InvalidInput`]; bad padding on
    /// decryption is [`AlgError::DecryptFailed`].
    /// Decryption that never got a whole IV is [`AlgError::InvalidInput`].
    pub fn finalize(mut self) -> Result<Out, AlgError> {
        let mut out = core::mem::take(&mut self.prefix);
        out.extend_from_slice(&self.finish()?);
        Ok(out)
    }

    /// [`Sm4Ctx::finalize`] without the prefix.
    fn finish(mut self) -> Result<Out, AlgError> {
        if matches!(self.state, State::AwaitIv { .. }) {
            return Err(AlgError::InvalidInput);
        }
        if !self.is_block_mode() {
            return Ok(Zeroizing::new(Vec::new()));
        }
        let mut last = Zeroizing::new(core::mem::take(&mut *self.pending));
        match (self.padding, self.decrypting()) {
            (Padding::None, _) if !last.is_empty() => Err(AlgError::InvalidInput),
            (Padding::None, _) => Ok(last),
            (Padding::Pkcs7, false) => {
                let pad = (BLOCK_LEN - last.len()) as u8;
                last.resize(BLOCK_LEN, pad);
                self.blocks(&mut last);
                Ok(last)
            }
            (Padding::Pkcs7, true) => {
                if last.len() != BLOCK_LEN {
                    return Err(AlgError::DecryptFailed);
                }
                self.blocks(&mut last);
                let n = pkcs7_unpad(&last)?;
                last.truncate(n);
                Ok(last)
            }
        }
    }

    fn decrypting(&self) -> bool {
        matches!(self.state, State::EcbDec(_) | State::CbcDec(_) | State::CfbDec(_) | State::AwaitIv { .. })
    }

    fn is_block_mode(&self) -> bool {
        matches!(self.state, State::EcbEnc(_) | State::EcbDec(_) | State::CbcEnc(_) | State::CbcDec(_))
    }

    /// Run whole blocks through the block mode in place.
    fn blocks(&mut self, buf: &mut [u8]) {
        let (blocks, _) = Array::slice_as_chunks_mut(buf);
        match &mut self.state {
            State::EcbEnc(c) => c.encrypt_blocks(blocks),
            State::EcbDec(c) => c.decrypt_blocks(blocks),
            State::CbcEnc(c) => c.encrypt_blocks(blocks),
            State::CbcDec(c) => c.decrypt_blocks(blocks),
            _ => {}
        }
    }
}

/// Length of the message in a decrypted last block, checking PKCS#7 without branching on
/// the padding bytes' values.
fn pkcs7_unpad(block: &[u8]) -> Result<usize, AlgError> {
    let pad = block[BLOCK_LEN - 1];
    let mut bad = subtle::Choice::from((pad == 0 || pad as usize > BLOCK_LEN) as u8);
    for (i, &b) in block.iter().enumerate() {
        let in_pad = subtle::Choice::from((i + pad as usize >= BLOCK_LEN) as u8);
        bad |= in_pad & !b.ct_eq(&pad);
    }
    if bool::from(bad) {
        return Err(AlgError::DecryptFailed);
    }
    Ok(BLOCK_LEN - pad as usize)
}

/// One-shot SM4 in a confidentiality mode.
pub fn crypt(key: &[u8], mode: Mode, dir: Direction, padding: Padding, data: &[u8]) -> Result<Out, AlgError> {
    crypt_placed(key, mode, dir, padding, IvPlace::Given, data)
}

/// One-shot SM4 with the IV where `place` says.
pub fn crypt_placed(
    key: &[u8],
    mode: Mode,
    dir: Direction,
    padding: Padding,
    place: IvPlace,
    data: &[u8],
) -> Result<Out, AlgError> {
    let mut ctx = Sm4Ctx::placed(key, mode, dir, padding, place)?;
    let mut out = ctx.update(data);
    out.extend_from_slice(&ctx.finalize()?);
    Ok(out)
}

/// A multi-part SM4-GCM operation; see the module docs for why it buffers.
pub struct Sm4GcmCtx {
    aead: aes_gcm::AesGcm<Sm4, U12>,
    nonce: [u8; GCM_NONCE_LEN],
    aad: Vec<u8>,
    dir: Direction,
    place: IvPlace,
    data: Out,
}

impl Sm4GcmCtx {
    pub fn new(key: &[u8], nonce: &[u8], aad: &[u8], dir: Direction) -> Result<Self, AlgError> {
        Self::placed(key, nonce, aad, dir, IvPlace::Given)
    }

    /// A context whose nonce is where `place` says ([`IvPlace::InData`] decryption: `nonce`
    /// is a placeholder, the first 12 bytes of input are the nonce).
    pub fn placed(key: &[u8], nonce: &[u8], aad: &[u8], dir: Direction, place: IvPlace) -> Result<Self, AlgError> {
        let aead = aes_gcm::AesGcm::<Sm4, U12>::new_from_slice(key).map_err(key_err)?;
        let nonce = nonce.try_into().map_err(|_| AlgError::InvalidInput)?;
        Ok(Self { aead, nonce, aad: aad.to_vec(), dir, place, data: Zeroizing::new(Vec::new()) })
    }

    /// Does the input start with the nonce?
    fn nonce_in_input(&self) -> bool {
        self.place == IvPlace::InData && self.dir == Direction::Decrypt
    }

    /// Buffer `data` (for decryption, ciphertext followed by the 16-byte tag, after the nonce
    /// with [`IvPlace::InData`]). Returns no output: everything comes from `finalize`.
    pub fn update(&mut self, data: &[u8]) -> Result<Out, AlgError> {
        let nonce = if self.nonce_in_input() { GCM_NONCE_LEN } else { 0 };
        if self.data.len() + data.len() > MAX_GCM_LEN + GCM_TAG_LEN + nonce {
            return Err(AlgError::InvalidInput);
        }
        self.data.extend_from_slice(data);
        Ok(Zeroizing::new(Vec::new()))
    }

    /// Encrypt: ciphertext ‖ tag (after the nonce with [`IvPlace::InData`]). Decrypt: the
    /// plaintext, only if the tag verifies.
    pub fn finalize(self) -> Result<Out, AlgError> {
        let (nonce, msg) = match self.nonce_in_input() {
            false => (self.nonce, &self.data[..]),
            true => match self.data.split_first_chunk::<GCM_NONCE_LEN>() {
                Some((n, rest)) => (*n, rest),
                None => return Err(AlgError::DecryptFailed),
            },
        };
        let payload = Payload { msg, aad: &self.aad };
        let nonce = Array::from(nonce);
        match self.dir {
            Direction::Encrypt => {
                if msg.len() > MAX_GCM_LEN {
                    return Err(AlgError::InvalidInput);
                }
                let sealed = self.aead.encrypt(&nonce, payload).map_err(|_| AlgError::InvalidInput)?;
                let mut out = Zeroizing::new(Vec::with_capacity(GCM_NONCE_LEN + sealed.len()));
                if self.place == IvPlace::InData {
                    out.extend_from_slice(&self.nonce);
                }
                out.extend_from_slice(&sealed);
                Ok(out)
            }
            Direction::Decrypt => {
                self.aead.decrypt(&nonce, payload).map(Zeroizing::new).map_err(|_| AlgError::DecryptFailed)
            }
        }
    }
}

/// SM4-GCM encryption: ciphertext ‖ 16-byte tag.
pub fn gcm_encrypt(key: &[u8], nonce: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, AlgError> {
    let mut ctx = Sm4GcmCtx::new(key, nonce, aad, Direction::Encrypt)?;
    ctx.update(plaintext)?;
    Ok(ctx.finalize()?.to_vec())
}

/// SM4-GCM decryption of ciphertext ‖ tag.
pub fn gcm_decrypt(key: &[u8], nonce: &[u8], aad: &[u8], sealed: &[u8]) -> Result<Out, AlgError> {
    let mut ctx = Sm4GcmCtx::new(key, nonce, aad, Direction::Decrypt)?;
    ctx.update(sealed)?;
    ctx.finalize()
}

/// A multi-part SM4-CMAC (NIST SP 800-38B over SM4).
#[derive(Clone)]
pub struct Sm4CmacCtx(cmac::Cmac<Sm4>);

impl Sm4CmacCtx {
    pub fn new(key: &[u8]) -> Result<Self, AlgError> {
        <cmac::Cmac<Sm4> as KeyInit>::new_from_slice(key).map(Self).map_err(key_err)
    }
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    pub fn finalize(self) -> [u8; BLOCK_LEN] {
        self.0.finalize().into_bytes().into()
    }
    /// Constant-time check of a full or truncated (≥ 8 bytes) tag.
    pub fn verify(self, tag: &[u8]) -> Result<(), AlgError> {
        if tag.len() < 8 || tag.len() > BLOCK_LEN {
            return Err(AlgError::VerifyFailed);
        }
        self.0.verify_truncated_left(tag).map_err(|_| AlgError::VerifyFailed)
    }
}

/// A multi-part SM4 CBC-MAC, the standard form with the zero IV: the last block of CBC
/// encryption (GM/T 0018 SDF_CalculateMAC; an IV v gives the MAC of the message whose first
/// block is XORed with v). The caller pads; the total length must be whole blocks.
pub struct Sm4CbcMacCtx {
    inner: Sm4Ctx,
    last: [u8; BLOCK_LEN],
    seen_block: bool,
}

impl Sm4CbcMacCtx {
    pub fn new(key: &[u8]) -> Result<Self, AlgError> {
        let inner = Sm4Ctx::new(key, Mode::Cbc([0; BLOCK_LEN]), Direction::Encrypt, Padding::None)?;
        Ok(Self { inner, last: [0; BLOCK_LEN], seen_block: false })
    }
    pub fn update(&mut self, data: &[u8]) {
        let out = self.inner.update(data);
        if out.len() >= BLOCK_LEN {
            self.last.copy_from_slice(&out[out.len() - BLOCK_LEN..]);
            self.seen_block = true;
        }
    }
    /// The MAC; [`AlgError::InvalidInput`] if no data or a partial last block was given.
    pub fn finalize(self) -> Result<[u8; BLOCK_LEN], AlgError> {
        let (last, seen_block) = (self.last, self.seen_block);
        self.inner.finalize()?;
        if !seen_block {
            return Err(AlgError::InvalidInput);
        }
        Ok(last)
    }
    pub fn verify(self, tag: &[u8]) -> Result<(), AlgError> {
        let mac = self.finalize().map_err(|_| AlgError::VerifyFailed)?;
        if tag.len() >= 4 && tag.len() <= BLOCK_LEN && bool::from(mac[..tag.len()].ct_eq(tag)) {
            Ok(())
        } else {
            Err(AlgError::VerifyFailed)
        }
    }
}

#[cfg(test)]
#[path = "sm4_tests.rs"]
mod tests;
