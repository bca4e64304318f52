//! gmhsm-provisioning: the appliance's ceremonies, run at the front panel by the daemon (or the
//! simulator): init, quorum / operator / auditor login, card check, PIN change, PIN unblock,
//! card-set replacement and zeroize. `docs/ceremonies.md` describes each as an operator sees it.
//!
//! [`front`] is the front panel that runs them (the panel thread, its pages and menus, the
//! control socket's grammar), hosted by `gmhsmd` and by `gmhsm-sim`; [`tls`] provisions the
//! appliance's card-held TLS keys.
//!
//! A ceremony drives four devices, all behind traits so that the production path (PC/SC
//! reader, HD44780 panel, card link to the crypto card) and the simulator run the same code:
//! * [`CardLink`] — requests to the crypto card as `Principal::Local` on one session (the
//!   card enforces every rule; this crate only relays and prompts);
//! * a reader implementing `CardTransport + CardSlot` (`gmhsm_icc::PcscReader` in production);
//! * a `TextDisplay` (the LCD) and a `Keypad`, wrapped in [`Panel`].
//!
//! Invariants:
//! * each ceremony is a state machine advanced by value (`State::step(self, ..) -> State`);
//!   a state cannot be reused, and the crypto card refuses any step out of order anyway;
//! * PINs exist only in [`gmhsm_icc::Pin`] (zeroizing) and are shown as stars; no ceremony has
//!   a default PIN: each holder types theirs twice, at least 6 digits;
//! * a failed init or replacement is aborted on the crypto card (`CeremonyAbort`): nothing it
//!   prepared is kept;
//! * authority from a quorum login lives in an [`Authority`] value: administration methods
//!   take `&mut self`, ceremonies that end it take `self`. Removing the card left in the reader
//!   withdraws it (`AdminLogout`) and ends the authority.

pub mod ceremony;
pub mod error;
pub mod front;
pub mod link;
pub mod panel;
pub mod tls;

pub use ceremony::{Authority, InitPlan, Station, Timeouts};
pub use error::CeremonyError;
pub use link::{CardLink, UnixCardLink};
pub use panel::Panel;
