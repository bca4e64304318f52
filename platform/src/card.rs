//! Admin-card reader: the APDU transport to an inserted card, and slot events.
//!
//! Control is split from data (as Tock's HILs): [`CardSlot`] says whether a card is there,
//! [`CardTransport`] moves APDU bytes. Neither knows the admin-card application; that is
//! `gmhsm-icc`'s `AdminCard`. Real readers are reached through PC/SC; simulated cards
//! implement the same traits in `sim`.

extern crate alloc;

use alloc::vec::Vec;

/// Why an exchange with the card or the reader failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CardError {
    /// No card in the slot; nothing was sent. Ask the operator to insert one.
    NoCard,
    /// The card was removed (or reset by someone else) since it was connected; the card's
    /// volatile state (PIN verified, challenge) is gone. Reconnect and start the exchange over.
    Removed,
    /// The card did not answer or answered garbage at the transport level; the command may or
    /// may not have been executed. Reconnect; treat any pending operation as failed.
    Transport,
    /// The reader or the smart-card service (pcscd) failed or is unavailable.
    Reader,
    /// The command or its answer exceeds what the transport can carry; nothing was sent.
    TooLong,
}

impl core::fmt::Display for CardError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            CardError::NoCard => "no card in the reader",
            CardError::Removed => "card removed",
            CardError::Transport => "card transport error",
            CardError::Reader => "card reader unavailable",
            CardError::TooLong => "APDU too long for the transport",
        })
    }
}

impl core::error::Error for CardError {}

/// Carries one command APDU to the card and its response APDU back (ISO 7816-4 bytes; the
/// transport handles T=0 `61xx`/`6Cxx` procedure bytes itself, so callers see whole R-APDUs).
pub trait CardTransport {
    /// Send `capdu`; on success `rapdu` is replaced by the response including SW1 SW2
    /// (so it is at least two bytes long).
    fn transmit(&mut self, capdu: &[u8], rapdu: &mut Vec<u8>) -> Result<(), CardError>;
}

impl<T: CardTransport + ?Sized> CardTransport for &mut T {
    fn transmit(&mut self, capdu: &[u8], rapdu: &mut Vec<u8>) -> Result<(), CardError> {
        (**self).transmit(capdu, rapdu)
    }
}

/// Whether a card sits in the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    Empty,
    Present,
}

/// A change of [`SlotState`] seen by [`CardSlot::wait_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotEvent {
    Inserted,
    Removed,
}

/// The reader slot: presence and insertion / removal events.
pub trait CardSlot {
    /// The slot's state now.
    fn state(&mut self) -> Result<SlotState, CardError>;

    /// Wait up to `timeout_ms` for the slot to change from the state last reported by this
    /// method or [`CardSlot::state`]. `Ok(None)` = nothing happened before the timeout.
    fn wait_event(&mut self, timeout_ms: u32) -> Result<Option<SlotEvent>, CardError>;
}
