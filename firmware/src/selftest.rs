//! Power-up known-answer tests. A failure puts the card in its error state.

use sm3::{Digest, Sm3};
use sm4::cipher::{BlockCipherEncrypt, KeyInit};

/// SM3("abc") from GB/T 32905 Appendix A.1.
const SM3_ABC: [u8; 32] = [
    0x66, 0xc7, 0xf0, 0xf4, 0x62, 0xee, 0xed, 0xd9, 0xd1, 0xf2, 0xd4, 0x6b, 0xdc, 0x10, 0xe4, 0xe2,
    0x41, 0x67, 0xc4, 0x87, 0x5c, 0xf2, 0xf7, 0xa2, 0x29, 0x7d, 0xa0, 0x2b, 0x8f, 0x4b, 0xa8, 0xe0,
];

/// GB/T 32907 Appendix A example 1: key = plaintext = 0123456789abcdeffedcba9876543210.
const SM4_KEY: [u8; 16] = [
    0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10,
];
const SM4_CT: [u8; 16] = [
    0x68, 0x1e, 0xdf, 0x34, 0xd2, 0x06, 0x96, 0x5e, 0x86, 0xb3, 0xe9, 0x4f, 0x53, 0x6e, 0x42, 0x46,
];

/// Run every known-answer test; the first failure's description.
pub fn run() -> Result<(), &'static str> {
    if Sm3::digest(b"abc").as_slice() != SM3_ABC {
        return Err("self-test: SM3 known answer failed");
    }
    let c = sm4::Sm4::new(&SM4_KEY.into());
    let mut b = sm4::cipher::Block::<sm4::Sm4>::from(SM4_KEY);
    c.encrypt_block(&mut b);
    if b.as_slice() != SM4_CT {
        return Err("self-test: SM4 known answer failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_answers_pass() {
        assert_eq!(super::run(), Ok(()));
    }
}
