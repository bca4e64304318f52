//! The front panel hosted by `gmhsmd` (`[panel]` in `gmhsmd.toml`): the production panel of
//! `gmhsm_provisioning::front` — status pages, menus, approvals and the ceremonies — on its own
//! thread, never on the event loop, with its own card link (`Principal::Local`, session
//! `gmhsm_proto::sessions::PANEL`).
//!
//! Devices are named in the configuration: the admin-card reader through pcscd (`pcsc` or
//! `pcsc:READER NAME`, feature `pcsc`), the LCD (`i2c:/dev/i2c-N:0xADDR`) and the keypad
//! (`evdev:/dev/input/...`). Any backend behind the `gmhsm_platform` traits plugs in through
//! [`host`]; the Linux LCD and keypad backends are not in this build yet (the daemon says so
//! and does not start when `[panel]` is enabled).

use std::path::Path;

use anyhow::{Context, bail};
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
    /// The LCD: `i2c:/dev/i2c-N:0xADDR` (HD44780 on a PCF8574 backpack, 20x4).
    pub lcd: String,
    /// The keypad: `evdev:/dev/input/...`.
    pub keypad: String,
}

impl Default for PanelSettings {
    fn default() -> Self {
        PanelSettings {
            enabled: false,
            reader: "pcsc".into(),
            lcd: "i2c:/dev/i2c-1:0x27".into(),
            keypad: "evdev:/dev/input/by-id/gmhsm-keypad".into(),
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
    /// Check the device names (nothing is opened).
    pub fn check(&self) -> anyhow::Result<()> {
        self.reader_choice()?;
        let (Some(("i2c", lcd)), Some(("evdev", pad))) = (self.lcd.split_once(':'), self.keypad.split_once(':')) else {
            bail!("panel: lcd is `i2c:/dev/i2c-N:0xADDR` and keypad `evdev:/dev/input/...`");
        };
        if lcd.is_empty() || pad.is_empty() {
            bail!("panel: lcd and keypad name a device");
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

/// Open the devices `settings` names and start the panel; `None` when it is not enabled.
pub fn start(settings: &PanelSettings, card_socket: &Path) -> anyhow::Result<Option<FrontPanel>> {
    if !settings.enabled {
        return Ok(None);
    }
    settings.check()?;
    let reader = open_reader(&settings.reader_choice()?)?;
    let (display, keypad) = open_lcd_and_keypad(settings)?;
    host(card_socket, reader, display, keypad).map(Some)
}

/// A device this build has no backend for: no value of it exists.
pub enum Unbuilt {}

impl TextDisplay for Unbuilt {
    fn columns(&self) -> u8 {
        match *self {}
    }
    fn rows(&self) -> u8 {
        match *self {}
    }
    fn write_line(&mut self, _: u8, _: &str) -> Result<(), gmhsm_platform::DisplayError> {
        match *self {}
    }
    fn clear(&mut self) -> Result<(), gmhsm_platform::DisplayError> {
        match *self {}
    }
    fn set_backlight(&mut self, _: bool) -> Result<(), gmhsm_platform::DisplayError> {
        match *self {}
    }
}

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

impl Keypad for Unbuilt {
    fn read_key(&mut self, _: u32) -> Result<Option<gmhsm_platform::Key>, gmhsm_platform::KeypadError> {
        match *self {}
    }
}

/// The LCD over `/dev/i2c-N` and the keypad over evdev come with the Linux device backends
/// (issue 13); until then a panel that can neither show nor read anything is not started.
fn open_lcd_and_keypad(settings: &PanelSettings) -> anyhow::Result<(Unbuilt, Unbuilt)> {
    bail!(
        "panel: the LCD `{}` and keypad `{}` backends are not in this build of gmhsmd: turn [panel] off",
        settings.lcd,
        settings.keypad
    )
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
        assert!(PanelSettings { lcd: "spi:/dev/spidev0".into(), ..d.clone() }.check().is_err());
        assert!(PanelSettings { keypad: "evdev:".into(), ..d.clone() }.check().is_err());
        assert!(start(&d, Path::new("/nonexistent")).unwrap().is_none(), "off: nothing starts");
    }
}
