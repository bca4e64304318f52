//! The front panel's card reader: one slot that holds at most one virtual admin card, with
//! insert / remove events, behind the platform's `CardTransport` + `CardSlot` traits (what
//! `gmhsm_icc::PcscReader` is on the appliance).
//!
//! Invariants: a card answers only while it is in the slot (`NoCard` otherwise); the first
//! exchange after the card in the slot changed fails once with `Removed`, as a PC/SC handle to
//! the previous card would, so a ceremony never talks to a card it did not open.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gmhsm_platform::{CardError, CardSlot, CardTransport, SlotEvent, SlotState};

use super::Activity;
use crate::admin_card::VirtualCard;

struct Inner {
    card: Option<(String, VirtualCard)>,
    /// Bumped at every insertion.
    generation: u64,
}

/// The slot, shared by the hands (insert / remove) and the reader.
#[derive(Clone)]
pub struct SimSlot(Arc<(Mutex<Inner>, Condvar)>);

/// Why the hands could not do what they tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotError {
    /// A card is already in the slot (its name).
    Occupied(String),
    /// Nothing to remove.
    Empty,
}

impl std::fmt::Display for SlotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SlotError::Occupied(n) => write!(f, "the reader already holds {n}: remove it first"),
            SlotError::Empty => f.write_str("the reader is empty"),
        }
    }
}

impl Default for SimSlot {
    fn default() -> Self {
        SimSlot(Arc::new((Mutex::new(Inner { card: None, generation: 0 }), Condvar::new())))
    }
}

impl SimSlot {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Put `card` (called `name`) into the empty slot.
    pub fn insert(&self, name: &str, card: VirtualCard) -> Result<(), SlotError> {
        let mut s = self.lock();
        if let Some((held, _)) = &s.card {
            return Err(SlotError::Occupied(held.clone()));
        }
        s.card = Some((name.to_string(), card));
        s.generation += 1;
        self.0.1.notify_all();
        Ok(())
    }

    /// Pull the card out; returns its name.
    pub fn remove(&self) -> Result<String, SlotError> {
        let mut s = self.lock();
        let (name, _) = s.card.take().ok_or(SlotError::Empty)?;
        self.0.1.notify_all();
        Ok(name)
    }

    /// The name of the card in the slot.
    pub fn holding(&self) -> Option<String> {
        self.lock().card.as_ref().map(|(n, _)| n.clone())
    }

    /// The reader end, for a ceremony station.
    pub fn reader(&self, activity: Activity) -> SlotReader {
        SlotReader { slot: self.clone(), reported: SlotState::Empty, connected: 0, activity }
    }
}

/// The reader as the station sees it.
pub struct SlotReader {
    slot: SimSlot,
    /// The state last reported by `state` / `wait_event`.
    reported: SlotState,
    /// Generation of the card last talked to (0 = none yet).
    connected: u64,
    activity: Activity,
}

fn state_of(s: &Inner) -> SlotState {
    if s.card.is_some() { SlotState::Present } else { SlotState::Empty }
}

impl CardTransport for SlotReader {
    fn transmit(&mut self, capdu: &[u8], rapdu: &mut Vec<u8>) -> Result<(), CardError> {
        let mut s = self.slot.lock();
        let generation = s.generation;
        let Some((_, card)) = s.card.as_mut() else { return Err(CardError::NoCard) };
        if self.connected != generation {
            let first = self.connected == 0;
            self.connected = generation;
            if !first {
                return Err(CardError::Removed);
            }
        }
        card.transmit(capdu, rapdu)
    }
}

impl CardSlot for SlotReader {
    fn state(&mut self) -> Result<SlotState, CardError> {
        self.reported = state_of(&self.slot.lock());
        Ok(self.reported)
    }

    fn wait_event(&mut self, timeout_ms: u32) -> Result<Option<SlotEvent>, CardError> {
        let deadline = Instant::now() + Duration::from_millis(u64::from(timeout_ms));
        let mut s = self.slot.lock();
        let mut waiting = false;
        let event = loop {
            let now = state_of(&s);
            if now != self.reported {
                self.reported = now;
                break Some(if now == SlotState::Present { SlotEvent::Inserted } else { SlotEvent::Removed });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break None;
            }
            if !waiting {
                waiting = true;
                self.activity.begin_wait();
            }
            s = self.slot.0.1.wait_timeout(s, left).unwrap_or_else(|p| p.into_inner()).0;
        };
        if waiting {
            self.activity.end_wait();
        }
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_a_changed_card_is_reopened() {
        let slot = SimSlot::default();
        let mut r = slot.reader(Activity::default());
        let mut out = Vec::new();
        assert_eq!(r.transmit(&[0, 0xA4, 4, 0], &mut out), Err(CardError::NoCard));
        assert_eq!(r.wait_event(0).unwrap(), None);
        slot.insert("a", VirtualCard::blank()).unwrap();
        assert_eq!(slot.insert("b", VirtualCard::blank()), Err(SlotError::Occupied("a".into())));
        assert_eq!(r.wait_event(10).unwrap(), Some(SlotEvent::Inserted));
        assert!(r.transmit(&[0, 0xA4, 4, 0], &mut out).is_ok());
        assert_eq!(slot.remove().unwrap(), "a");
        assert_eq!(slot.remove(), Err(SlotError::Empty));
        slot.insert("b", VirtualCard::blank()).unwrap();
        // Removed and reinserted between two looks: the state is the same, but the next
        // exchange tells the station the card changed.
        assert_eq!(r.state().unwrap(), SlotState::Present);
        assert_eq!(r.transmit(&[0, 0xA4, 4, 0], &mut out), Err(CardError::Removed));
        assert!(r.transmit(&[0, 0xA4, 4, 0], &mut out).is_ok());
    }
}
