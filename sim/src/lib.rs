//! gmhsm hardware simulator: every device of the appliance as a simulated twin behind the
//! `platform` traits, the simulated crypto card process (the production card runtime,
//! `gmhsm-card`, on these devices), and the pieces `gmhsm-sim` uses to
//! boot a whole virtual appliance from a state folder.
//!
//! State folder layout (`gmhsm-sim up --state DIR`):
//! * `DIR/card/flash.img` — the card's secure flash (NOR semantics, synced writes);
//! * `DIR/card/tamper.ram` — tamper RAM holding the device master key; `DIR/card/tamper.trip`
//!   present = enclosure opened;
//! * `DIR/card.sock` — the card link (Unix socket, mode 0600);
//! * `DIR/panel.sock` — the front panel's control socket (mode 0600, `gmhsm-sim panel`);
//! * `DIR/cards/NAME.img` — virtual admin cards (`--demo`: `admin-i`, `operator-1`,
//!   `auditor-1`, and `PINS.txt`, mode 0600, a simulator convenience a real appliance lacks);
//! * `DIR/pki/` — demo CA, server and client certificates;
//! * `DIR/client.toml` — client profile, present only while the appliance accepts connections.
#![forbid(unsafe_code)]

pub mod admin_card;
pub mod appliance;
pub mod board;
pub mod card;
pub mod ceremony;
pub mod clock;
pub mod flash;
pub mod keypad_sim;
pub mod lcd_sim;
pub mod noise;
pub mod panel;
pub mod pki;
pub mod provision;
pub mod tamper;
#[cfg(feature = "pcsc")]
pub mod vpcd;
