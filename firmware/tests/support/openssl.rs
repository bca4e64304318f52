//! What the OpenSSL interop tests share: a deterministic test RNG, running the `openssl`
//! command line (a missing `openssl` fails the test, never skips it), and PEM armour.
#![allow(dead_code)] // each test file uses its own part

use std::process::Command;

use ::sm3::Digest as _;
use rand_core::{TryCryptoRng, TryRng};

/// Counter-mode SM3 test RNG from a fixed seed (deterministic runs).
pub struct TestRng(pub u64, pub [u8; 32]);

impl TestRng {
    pub fn new(seed: &[u8]) -> Self {
        TestRng(0, ::sm3::Sm3::digest(seed).into())
    }
}

impl TryRng for TestRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(32) {
            let mut h = ::sm3::Sm3::new();
            h.update(self.1);
            h.update(self.0.to_be_bytes());
            self.0 += 1;
            chunk.copy_from_slice(&h.finalize()[..chunk.len()]);
        }
        Ok(())
    }
}
impl TryCryptoRng for TestRng {}

/// Run `openssl args…`; panics with OpenSSL's stderr if it fails, and with a clear message
/// if `openssl` is not installed.
pub fn openssl(args: &[&str]) -> Vec<u8> {
    let out = match Command::new("openssl").args(args).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!(
                "`openssl` is not on PATH: this interop test needs the OpenSSL 3 command line (apt-get install openssl)"
            )
        }
        Err(e) => panic!("cannot run openssl: {e}"),
    };
    assert!(out.status.success(), "openssl {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    out.stdout
}

pub fn pem(label: &str, der: &[u8]) -> Vec<u8> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for c in der.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            b64.push(if i <= c.len() { T[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    let mut s = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(line).unwrap());
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s.into_bytes()
}
