//! gmhsm-icc: ISO 7816-4 APDUs, the admin-card application client ([`AdminCard`]) and the
//! PC/SC backend ([`PcscReader`], feature `pcsc`, on by default).
//!
//! The admin-card application is specified in `docs/admin-card.md`; [`spec`] holds its
//! constants and signed-message layouts so that the client, the simulated card and the
//! crypto card firmware build the same bytes.
//!
//! Invariants:
//! * parsing card answers (and, on the simulated card, commands) never panics and never
//!   trusts a length field: every parser is `new_checked`-style and total;
//! * PINs and shares live only in zeroizing types ([`spec::Pin`], `Zeroizing<Vec<u8>>`), and
//!   APDU `Debug` output never shows data fields;
//! * the client never retries a PIN on its own: every try is the caller's decision.
//!
//! Without the `pcsc` feature the crate is `no_std` + `alloc`.
#![cfg_attr(not(feature = "pcsc"), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod admin_card;
pub mod apdu;
#[cfg(feature = "pcsc")]
pub mod pcsc_reader;
pub mod spec;
pub mod tlv;

pub use admin_card::{AdminCard, AdminCardError, CardChallenge, CardInfo, PinStatus, Sm2Point, Sm2Signature};
pub use apdu::{ApduError, Command, Response, StatusWord};
#[cfg(feature = "pcsc")]
pub use pcsc_reader::{PcscReader, list_readers};
pub use spec::{CardState, Pin, PinFormatError, Role};
