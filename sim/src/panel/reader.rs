//! Which reader the front panel uses (`gmhsm-sim up --reader`): the in-process [`SimSlot`]
//! (the default: no pcscd needed), or — with the `pcsc` feature — the real PC/SC stack, as on
//! the appliance: the panel thread talks to `gmhsm_icc::PcscReader` on pcscd's vpcd reader
//! ("Virtual PCD 00 00"), and inserting a card connects its image to vpcd as a
//! [`crate::vpcd::VpcdCard`] (removing it disconnects it).
//!
//! Invariants: the vpcd reader holds at most one card (insert refuses a second one); insert
//! and remove return once pcscd has seen the card come or go, so the next insertion is never
//! mistaken for the previous card.

use gmhsm_platform::{CardError, CardSlot, CardTransport, SlotEvent, SlotState};

use super::Activity;
use super::slot::{SimSlot, SlotReader};
use crate::admin_card::VirtualCard;

/// The reader behind the front panel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReaderKind {
    /// The in-process slot (`--reader sim`).
    #[default]
    Sim,
    /// pcscd's vpcd reader through PC/SC (`--reader pcsc`, feature `pcsc`).
    Pcsc,
}

impl std::str::FromStr for ReaderKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sim" | "in-process" => Ok(ReaderKind::Sim),
            "pcsc" if cfg!(feature = "pcsc") => Ok(ReaderKind::Pcsc),
            "pcsc" => Err("--reader pcsc needs gmhsm-sim built with the `pcsc` feature \
                           (cargo build -p gmhsm-sim --features pcsc)"
                .into()),
            other => Err(format!("unknown reader {other:?} (sim or pcsc)")),
        }
    }
}

/// The hands at the reader: insert and remove cards.
#[derive(Clone)]
pub(crate) enum Hands {
    Sim(SimSlot),
    #[cfg(feature = "pcsc")]
    Pcsc(pcsc_path::VpcdHands),
}

/// The reader as the panel thread sees it.
pub(crate) enum PanelReader {
    Sim(SlotReader),
    #[cfg(feature = "pcsc")]
    Pcsc(pcsc_path::WatchedPcsc),
}

/// The hands and the reader for `kind`.
pub(crate) fn open(kind: ReaderKind, activity: &Activity) -> anyhow::Result<(Hands, PanelReader)> {
    match kind {
        ReaderKind::Sim => {
            let slot = SimSlot::default();
            let reader = slot.reader(activity.clone());
            Ok((Hands::Sim(slot), PanelReader::Sim(reader)))
        }
        #[cfg(feature = "pcsc")]
        ReaderKind::Pcsc => pcsc_path::open(activity),
        #[cfg(not(feature = "pcsc"))]
        ReaderKind::Pcsc => anyhow::bail!("--reader pcsc needs gmhsm-sim built with the `pcsc` feature"),
    }
}

impl Hands {
    pub(crate) fn insert(&self, name: &str, card: VirtualCard) -> Result<(), String> {
        match self {
            Hands::Sim(s) => s.insert(name, card).map_err(|e| e.to_string()),
            #[cfg(feature = "pcsc")]
            Hands::Pcsc(h) => h.insert(name, card),
        }
    }

    pub(crate) fn remove(&self) -> Result<String, String> {
        match self {
            Hands::Sim(s) => s.remove().map_err(|e| e.to_string()),
            #[cfg(feature = "pcsc")]
            Hands::Pcsc(h) => h.remove(),
        }
    }

    pub(crate) fn holding(&self) -> Option<String> {
        match self {
            Hands::Sim(s) => s.holding(),
            #[cfg(feature = "pcsc")]
            Hands::Pcsc(h) => h.holding(),
        }
    }
}

impl CardTransport for PanelReader {
    fn transmit(&mut self, capdu: &[u8], rapdu: &mut Vec<u8>) -> Result<(), CardError> {
        match self {
            PanelReader::Sim(r) => r.transmit(capdu, rapdu),
            #[cfg(feature = "pcsc")]
            PanelReader::Pcsc(r) => r.reader.transmit(capdu, rapdu),
        }
    }
}

impl CardSlot for PanelReader {
    fn state(&mut self) -> Result<SlotState, CardError> {
        match self {
            PanelReader::Sim(r) => r.state(),
            #[cfg(feature = "pcsc")]
            PanelReader::Pcsc(r) => r.reader.state(),
        }
    }

    fn wait_event(&mut self, timeout_ms: u32) -> Result<Option<SlotEvent>, CardError> {
        match self {
            PanelReader::Sim(r) => r.wait_event(timeout_ms),
            #[cfg(feature = "pcsc")]
            PanelReader::Pcsc(r) => {
                // Report the wait, as the in-process slot does, so `Activity::settle` works.
                if timeout_ms == 0 {
                    return r.reader.wait_event(0);
                }
                r.activity.begin_wait();
                let e = r.reader.wait_event(timeout_ms);
                r.activity.end_wait();
                e
            }
        }
    }
}

#[cfg(feature = "pcsc")]
mod pcsc_path {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use gmhsm_icc::PcscReader;
    use gmhsm_platform::{CardSlot, SlotState};

    use super::{Activity, Hands, PanelReader};
    use crate::admin_card::VirtualCard;
    use crate::vpcd::{Pcscd, VPCD_READER, VpcdCard};

    /// How long pcscd may take to see a card come or go.
    const SEEN: Duration = Duration::from_secs(15);

    /// `PcscReader` plus the panel's activity (its waits are reported).
    pub(crate) struct WatchedPcsc {
        pub reader: PcscReader,
        pub activity: Activity,
    }

    struct Held {
        card: Option<(String, VpcdCard)>,
        /// A reader of our own, to see what pcscd sees.
        watch: PcscReader,
    }

    #[derive(Clone)]
    pub(crate) struct VpcdHands {
        held: Arc<Mutex<Held>>,
        /// The pcscd in use (stopped with the last hands when started here).
        _pcscd: Arc<Pcscd>,
    }

    pub(super) fn open(activity: &Activity) -> anyhow::Result<(Hands, PanelReader)> {
        let pcscd = Pcscd::ensure(Duration::from_secs(20)).map_err(|e| anyhow::anyhow!("{e}"))?;
        let name = pcscd.wait_for_reader(VPCD_READER, SEEN).map_err(|e| anyhow::anyhow!("{e}"))?;
        let reader = PcscReader::open(&name).map_err(|e| anyhow::anyhow!("PC/SC reader {name:?}: {e:?}"))?;
        let mut watch = PcscReader::open(&name).map_err(|e| anyhow::anyhow!("PC/SC reader {name:?}: {e:?}"))?;
        if watch.state().map_err(|e| anyhow::anyhow!("PC/SC reader {name:?}: {e:?}"))? != SlotState::Empty {
            anyhow::bail!("the PC/SC reader {name:?} already holds a card: remove it first");
        }
        log::info!("front panel: admin cards through PC/SC reader {name:?} (vpcd)");
        let hands = VpcdHands { held: Arc::new(Mutex::new(Held { card: None, watch })), _pcscd: Arc::new(pcscd) };
        Ok((Hands::Pcsc(hands), PanelReader::Pcsc(WatchedPcsc { reader, activity: activity.clone() })))
    }

    fn wait_for(watch: &mut PcscReader, want: SlotState) -> Result<(), String> {
        let deadline = Instant::now() + SEEN;
        loop {
            match watch.state() {
                Ok(s) if s == want => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(format!("PC/SC: {e:?}")),
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "pcscd did not see the card {} within {SEEN:?}",
                    if want == SlotState::Present { "arrive" } else { "go" }
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    impl VpcdHands {
        fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
            self.held.lock().unwrap_or_else(|p| p.into_inner())
        }

        pub(crate) fn insert(&self, name: &str, card: VirtualCard) -> Result<(), String> {
            let mut h = self.lock();
            if let Some((held, _)) = &h.card {
                return Err(format!("the reader already holds {held}: remove it first"));
            }
            let c = VpcdCard::insert_default(card).map_err(|e| format!("connecting the card to vpcd: {e}"))?;
            h.card = Some((name.to_string(), c));
            wait_for(&mut h.watch, SlotState::Present)
        }

        pub(crate) fn remove(&self) -> Result<String, String> {
            let mut h = self.lock();
            let (name, c) = h.card.take().ok_or("the reader is empty")?;
            drop(c.remove());
            wait_for(&mut h.watch, SlotState::Empty)?;
            Ok(name)
        }

        pub(crate) fn holding(&self) -> Option<String> {
            self.lock().card.as_ref().map(|(n, _)| n.clone())
        }
    }
}
