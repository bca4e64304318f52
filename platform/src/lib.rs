//! Hardware traits of the gmhsm appliance, one module per device class.
//!
//! The firmware knows the board only through these traits, bundled as [`Devices`] (as
//! OpenSK's `Env`). Real drivers implement them in the card's board module; simulated twins
//! live in `sim` (feature `sim`, in memory) and in the simulator (file-backed). Nothing here
//! does I/O; only the `sim` devices allocate.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "sim")]
extern crate alloc;

pub mod card;
pub mod clock;
pub mod display;
pub mod flash;
pub mod keypad;
pub mod noise;
#[cfg(feature = "sim")]
pub mod sim;
pub mod tamper;

pub use card::{CardError, CardSlot, CardTransport, SlotEvent, SlotState};
pub use clock::Clock;
pub use display::{DisplayError, TextDisplay};
pub use flash::{Flash, FlashError, FlashGeometry};
pub use keypad::{Key, Keypad, KeypadError};
pub use noise::{NoiseError, NoiseSource};
pub use tamper::{TamperError, TamperRam};

/// The set of device types of one board. The crypto card never gets the LCD, the keypad or
/// the network: those are the daemon's (least privilege, as Tock's HILs).
pub trait Platform {
    type Noise: NoiseSource;
    type Flash: Flash;
    type Tamper: TamperRam;
    type Clock: Clock;

    /// Run `a` and `b` and return both results: at once on two cores where the board has a
    /// second one free (the card splits large independent computations, such as a batch of
    /// SM2 decryptions, in two); the default runs them one after the other. Neither may touch
    /// the card's state: they get only what the closures own or borrow.
    fn join<RA: Send, RB: Send>(a: impl FnOnce() -> RA + Send, b: impl FnOnce() -> RB + Send) -> (RA, RB) {
        (a(), b())
    }
}

/// The devices of one board, handed to the firmware once at boot.
pub struct Devices<P: Platform> {
    pub noise: P::Noise,
    pub flash: P::Flash,
    pub tamper: P::Tamper,
    pub clock: P::Clock,
}
