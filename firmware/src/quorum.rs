//! Administration by quorum, inside the crypto card: the policy and card registry, the domain
//! key DK split k-of-n onto administrator cards, card logins, and the ceremony state machines.
//! No I/O: [`crate::hsm`] feeds it requests, the clock and the DRBG.
//!
//! Key hierarchy (`docs/architecture.md`, inside the card):
//! * DK — 32 random bytes from the card's DRBG, drawn at init; never stored whole. It is
//!   split with [`crate::shamir`] (GF(256), x = 1..=n) and recombined in RAM only while a
//!   quorum's authority lasts. Its integrity is checked outside the sharing:
//!   `dk_check = HMAC-SM3(DK, "gmhsm/dk-check/v1" ‖ domain id)` is stored, compared in
//!   constant time after every recombination ([`share::dk_check`]).
//! * Share blobs — each share is sealed before it leaves for its admin card: SM4-GCM under a
//!   share-wrapping key derived from the device master key, associated data = domain id ‖
//!   epoch ‖ x ‖ card serial ([`share::seal`]). A blob opens only on this device, for this
//!   card, in this card-set epoch: replacing the card set bumps the epoch and every old blob
//!   stops working; zeroizing the DMK makes every blob unreadable.
//! * Domain signing key — an SM2 key derived from DK ([`share::domain_key`]); its public half
//!   is bound on every card (PUT DATA `C8`) and authorizes share writes and PIN unblocks
//!   (`spec::domain_message`). It exists in RAM only during a ceremony or a quorum's authority,
//!   so no domain authorization can be made without a quorum.
//!
//! Invariants:
//! * a login counts only for a card in the registry, with a signature over a nonce this card
//!   issued for this session, used once ([`authority`]); only distinct administrator cards
//!   count toward k;
//! * authority ends at the policy timeout, when the session closes, and when a logout (card
//!   removal) leaves fewer than k cards; DK is zeroized then;
//! * ceremonies are state machines advanced by value ([`ceremony`]); a step in the wrong
//!   state is [`QuorumError::Unexpected`] and changes nothing.

pub mod authority;
pub mod ceremony;
pub mod error;
pub mod record;
pub mod share;

pub use authority::{AdminRuntime, Grant, SessionAdmin};
pub use ceremony::{Ceremony, Committed, Input, Output};
pub use error::QuorumError;
pub use record::AdminRecord;
