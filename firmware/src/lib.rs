//! gmhsm crypto card firmware: keys, RNG, access control, store; no I/O.
//!
//! The card is [`Hsm`]: booted once from the board's [`gmhsm_platform::Devices`], then driven
//! by `execute(principal, request)`. It never touches sockets, threads, files or clocks
//! except through the platform traits.
//!
//! Invariants:
//! * private keys exist in plaintext only inside this crate's memory, in zeroizing types;
//!   at rest they are wrapped under the device master key (SM4-GCM, attributes as AAD);
//! * every random byte comes from [`rng::CardRng`] (health-tested noise → SM3 Hash_DRBG);
//!   `sm2` and `rsa` are built without `getrandom`, so nothing else can supply one;
//! * a failed self-test, entropy test or tamper event puts the card in its error state, in
//!   which it generates and signs nothing.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod alg;
pub mod audit;
pub mod dmk;
pub mod drbg;
pub mod entropy;
pub mod envelope;
pub mod error;
pub mod hsm;
pub mod integrity;
pub mod keys;
pub mod ops;
pub mod quorum;
pub mod reserve;
pub mod rng;
pub mod selftest;
pub mod session;
pub mod shamir;
pub mod store;
pub mod wrap;

pub use error::Error;
pub use hsm::Hsm;
