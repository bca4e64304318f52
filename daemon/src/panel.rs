//! The front panel hosted by `gmhsmd` (`[panel]` in `gmhsmd.toml`): the production panel of
//! `gmhsm_provisioning::front` — status pages, menus, approvals and the ceremonies — on its own
//! thread, never on the event loop, with its own card link (`Principal::Local`, session
//! `gmhsm_proto::sessions::PANEL`).
//!
//! The admin-card reader is named here (`pcsc` or `pcsc:READER NAME`, feature `pcsc`); the LCD
//! and the keypad are the board's, described once in `/etc/gmhsm/appliance.toml` (`[lcd]`,
//! `[keypad]`; `gmhsm_board::config`), which `appliance` names: the LCD through `/dev/i2c-N`
//! (`gmhsm_board::lcd`), the keypad an evdev device (`gmhsm_board::keypad`). Any other backend
//! behind the `gmhsm_platform` traits plugs in through [`host`]. All are opened before the
//! daemon hardens; the panel thread keeps their descriptors (see `harden::allow`).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;
use gmhsm_board::ApplianceConfig;
use gmhsm_board::keypad::EvdevKeypad;
use gmhsm_platform::{CardSlot, CardTransport, Keypad, TextDisplay};
use gmhsm_provisioning::front::{Activity, Devices, FrontPanel};
use serde::Deserialize;

/// `[panel]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PanelSettings {
    /// Run the front panel (off: the appliance has no panel, or another process drives it).
    pub enabled: bool,
    /// The admin-card reader: `pcsc` (the only PC/SC reader there is) or `pcsc:NAME`.
    pub reader: String,
    /// The appliance's board description, whose `[lcd]` and `[keypad]` the panel opens.
    pub appliance: PathBuf,
}

impl Default for PanelSettings {
    fn default() -> Self {
        PanelSettings {
            enabled: false,
            reader: "pcsc".into(),
            appliance: PathBuf::from(gmhsm_board::config::DEFAULT_PATH),
        }
    }
}

/// Which reader a `reader` setting names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReaderChoice {
    /// The only PC/SC reader pcscd lists.
    PcscOnly,
    /// The PC/SC reader of that name.
    Pcsc(String),
}

impl PanelSettings {
    /// Check the settings (nothing is opened, the appliance file is not read).
    pub fn check(&self) -> anyhow::Result<()> {
        self.reader_choice()?;
        if self.appliance.as_os_str().is_empty() {
            bail!("panel: appliance names the board's configuration file");
        }
        Ok(())
    }

    pub fn reader_choice(&self) -> anyhow::Result<ReaderChoice> {
        match self.reader.split_once(':') {
            None if self.reader == "pcsc" => Ok(ReaderChoice::PcscOnly),
            Some(("pcsc", name)) if !name.is_empty() && name.len() <= 128 => Ok(ReaderChoice::Pcsc(name.into())),
            _ => bail!("panel: reader `{}` is not `pcsc` or `pcsc:NAME`", self.reader),
        }
    }
}

/// Start the panel on `display`, `keypad` and `reader` for the card at `card_socket`: any
/// backend plugs in. Boot progress and jobs go through the returned handle.
pub fn host<R, D, K>(card_socket: &Path, reader: R, display: D, keypad: K) -> anyhow::Result<FrontPanel>
where
    R: CardTransport + CardSlot + Send + 'static,
    D: TextDisplay + Send + 'static,
    K: Keypad + Send + 'static,
{
    let devices = Devices { card_socket: card_socket.to_path_buf(), reader, display, keypad, filter: None };
    FrontPanel::start(devices, Activity::default()).context("starting the front panel's thread")
}

/// Start the panel on the board's LCD and keypad as `board` describes them, the LCD on the
/// I2C bus `i2c` (the `/dev/i2c-N` of `board.lcd.bus`, or a test's bus): the keypad is opened,
/// the LCD initialized, then the panel thread started.
pub fn host_board<R, I, D>(
    card_socket: &Path,
    reader: R,
    board: &ApplianceConfig,
    i2c: I,
    delay: D,
) -> anyhow::Result<FrontPanel>
where
    R: CardTransport + CardSlot + Send + 'static,
    I: I2c + Send + 'static,
    D: DelayNs + Send + 'static,
{
    let keypad = EvdevKeypad::open(&board.keypad.path).context("panel")?;
    let display = gmhsm_board::lcd::attach(i2c, delay, &board.lcd).context("panel")?;
    host(card_socket, reader, display, keypad)
}

/// Open the devices `settings` names and start the panel; `None` when it is not enabled.
/// A missing I2C bus is refused before the reader is opened.
pub fn start(settings: &PanelSettings, card_socket: &Path) -> anyhow::Result<Option<FrontPanel>> {
    if !settings.enabled {
        return Ok(None);
    }
    settings.check()?;
    let board = ApplianceConfig::load(&settings.appliance).context("panel")?;
    let bus = &board.lcd.bus;
    let i2c = linux_embedded_hal::I2cdev::new(bus)
        .map_err(|e| anyhow::anyhow!("panel: LCD {}: {e} (is the i2c-dev module loaded?)", bus.display()))?;
    let reader = open_reader(&settings.reader_choice()?)?;
    host_board(card_socket, reader, &board, i2c, linux_embedded_hal::Delay).map(Some)
}

/// A reader this build has no backend for: no value of it exists.
pub enum Unbuilt {}

impl CardTransport for Unbuilt {
    fn transmit(&mut self, _: &[u8], _: &mut Vec<u8>) -> Result<(), gmhsm_platform::CardError> {
        match *self {}
    }
}

impl CardSlot for Unbuilt {
    fn state(&mut self) -> Result<gmhsm_platform::SlotState, gmhsm_platform::CardError> {
        match *self {}
    }
    fn wait_event(&mut self, _: u32) -> Result<Option<gmhsm_platform::SlotEvent>, gmhsm_platform::CardError> {
        match *self {}
    }
}

#[cfg(feature = "pcsc")]
fn open_reader(choice: &ReaderChoice) -> anyhow::Result<gmhsm_icc::PcscReader> {
    let name = match choice {
        ReaderChoice::Pcsc(name) => name.clone(),
        ReaderChoice::PcscOnly => {
            let names = gmhsm_icc::list_readers().map_err(|e| anyhow::anyhow!("pcscd: {e:?}"))?;
            match &names[..] {
                [one] => one.clone(),
                [] => bail!("panel: pcscd lists no reader"),
                many => bail!("panel: pcscd lists {} readers: name one (reader = \"pcsc:NAME\")", many.len()),
            }
        }
    };
    gmhsm_icc::PcscReader::open(&name).map_err(|e| anyhow::anyhow!("panel: PC/SC reader {name:?}: {e:?}"))
}

#[cfg(not(feature = "pcsc"))]
fn open_reader(_: &ReaderChoice) -> anyhow::Result<Unbuilt> {
    bail!("panel: gmhsmd was built without the `pcsc` feature (cargo build -p gmhsm-daemon --features pcsc)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_are_checked_before_anything_opens() {
        let d = PanelSettings::default();
        assert!(!d.enabled && d.check().is_ok());
        assert_eq!(d.reader_choice().unwrap(), ReaderChoice::PcscOnly);
        let named = PanelSettings { reader: "pcsc:Virtual PCD 00 00".into(), ..d.clone() };
        assert_eq!(named.reader_choice().unwrap(), ReaderChoice::Pcsc("Virtual PCD 00 00".into()));
        for bad in ["", "pcsc:", "usb", "sim"] {
            assert!(PanelSettings { reader: bad.into(), ..d.clone() }.check().is_err(), "{bad:?}");
        }
        assert!(PanelSettings { appliance: "".into(), ..d.clone() }.check().is_err());
        let missing = PanelSettings { enabled: true, appliance: "/nonexistent/appliance.toml".into(), ..d.clone() };
        let e = format!("{:#}", start(&missing, Path::new("/nonexistent")).err().unwrap());
        assert!(e.contains("cannot read /nonexistent/appliance.toml"), "{e}");
        assert!(start(&d, Path::new("/nonexistent")).unwrap().is_none(), "off: nothing starts");
    }
}
