//! The simulated crypto card process: the production card runtime (`gmhsm-card`) serving the
//! firmware on the simulated board ([`SimPlatform`]). Nothing of the runtime lives here.

use std::path::Path;
use std::time::Duration;

use gmhsm_firmware::Hsm;

use crate::board::SimPlatform;

/// Serve the card link on `socket` until the process ends (`gmhsm_card::serve`), its link
/// threads polling for `busy_poll` after each answer.
pub fn serve(hsm: Hsm<SimPlatform>, socket: &Path, busy_poll: Duration) -> anyhow::Result<()> {
    let opts = gmhsm_card::ServeOptions { busy_poll, ..gmhsm_card::ServeOptions::default() };
    gmhsm_card::serve(hsm, socket, opts)?;
    Ok(())
}
