//! The PC/SC backend: a reader reached through pcscd (the `pcsc` crate), implementing
//! [`CardTransport`] and [`CardSlot`].
//!
//! The card is connected lazily (shared mode, T=1 or T=0) on the first transmit, and dropped
//! when pcscd reports it removed or reset; the next transmit reconnects, so the caller sees
//! [`CardError::Removed`] once and must SELECT again. T=0 procedure bytes (`61xx`, `6Cxx`)
//! are handled here, so callers always see whole R-APDUs.

use std::ffi::{CStr, CString};
use std::time::{Duration, Instant};

use gmhsm_platform::{CardError, CardSlot, CardTransport, SlotEvent, SlotState};
use pcsc::{Card, Context, Error, Protocols, ReaderState, Scope, ShareMode, State};
use zeroize::Zeroizing;

fn map_err(e: Error) -> CardError {
    match e {
        Error::NoSmartcard | Error::UnpoweredCard => CardError::NoCard,
        Error::RemovedCard | Error::ResetCard => CardError::Removed,
        Error::NoService
        | Error::ServiceStopped
        | Error::ReaderUnavailable
        | Error::UnknownReader
        | Error::NoReadersAvailable
        | Error::InvalidHandle => CardError::Reader,
        Error::InsufficientBuffer => CardError::TooLong,
        _ => CardError::Transport,
    }
}

/// The names of the readers pcscd knows now (empty if none; `Reader` if pcscd is down).
pub fn list_readers() -> Result<Vec<String>, CardError> {
    let ctx = Context::establish(Scope::User).map_err(map_err)?;
    match ctx.list_readers_owned() {
        Ok(names) => Ok(names.into_iter().map(|n| n.to_string_lossy().into_owned()).collect()),
        Err(Error::NoReadersAvailable) => Ok(Vec::new()),
        Err(e) => Err(map_err(e)),
    }
}

/// One PC/SC reader and the card in it.
pub struct PcscReader {
    ctx: Context,
    name: CString,
    card: Option<Card>,
    watch: [ReaderState; 1],
    known: Option<SlotState>,
    rbuf: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for PcscReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PcscReader({:?}, connected: {})", self.name, self.card.is_some())
    }
}

impl PcscReader {
    /// Open the reader named `name` (as listed by [`list_readers`]). Does not touch the card.
    pub fn open(name: &str) -> Result<PcscReader, CardError> {
        let ctx = Context::establish(Scope::User).map_err(map_err)?;
        let name = CString::new(name).map_err(|_| CardError::Reader)?;
        let watch = [ReaderState::new(name.clone(), State::UNAWARE)];
        Ok(PcscReader {
            ctx,
            name,
            card: None,
            watch,
            known: None,
            rbuf: Zeroizing::new(vec![0; pcsc::MAX_BUFFER_SIZE_EXTENDED]),
        })
    }

    /// The first listed reader whose name contains `pattern`.
    pub fn find(pattern: &str) -> Result<PcscReader, CardError> {
        let name = list_readers()?.into_iter().find(|n| n.contains(pattern)).ok_or(CardError::Reader)?;
        PcscReader::open(&name)
    }

    pub fn name(&self) -> &CStr {
        &self.name
    }

    /// Connect to the card now (shared, T=1 or T=0); returns its ATR.
    pub fn connect(&mut self) -> Result<Vec<u8>, CardError> {
        let card = self.ctx.connect(&self.name, ShareMode::Shared, Protocols::T1 | Protocols::T0).map_err(map_err)?;
        let atr = card.status2_owned().map(|s| s.atr().to_vec()).map_err(map_err)?;
        self.card = Some(card);
        Ok(atr)
    }

    /// Drop the connection; `reset` also resets the card (clearing its PIN verification).
    pub fn disconnect(&mut self, reset: bool) {
        if let Some(card) = self.card.take() {
            let how = if reset { pcsc::Disposition::ResetCard } else { pcsc::Disposition::LeaveCard };
            let _ = card.disconnect(how);
        }
    }

    fn transmit_once(&mut self, capdu: &[u8]) -> Result<Vec<u8>, CardError> {
        if self.card.is_none() {
            self.connect()?;
        }
        let card = self.card.as_ref().ok_or(CardError::NoCard)?;
        match card.transmit(capdu, &mut self.rbuf) {
            Ok(r) => Ok(r.to_vec()),
            Err(e) => {
                let e = map_err(e);
                if matches!(e, CardError::Removed | CardError::NoCard | CardError::Transport) {
                    self.card = None;
                }
                Err(e)
            }
        }
    }

    fn presence(&self) -> SlotState {
        if self.watch[0].event_state().contains(State::PRESENT) { SlotState::Present } else { SlotState::Empty }
    }

    fn poll(&mut self, timeout: Duration) -> Result<bool, CardError> {
        match self.ctx.get_status_change(timeout, &mut self.watch) {
            Ok(()) => {
                self.watch[0].sync_current_state();
                Ok(true)
            }
            Err(Error::Timeout) => Ok(false),
            Err(e) => Err(map_err(e)),
        }
    }
}

impl CardTransport for PcscReader {
    fn transmit(&mut self, capdu: &[u8], rapdu: &mut Vec<u8>) -> Result<(), CardError> {
        let mut r = Zeroizing::new(self.transmit_once(capdu)?);
        rapdu.clear();
        // T=0: 6Cxx = resend with Le = xx; 61xx = fetch xx more bytes with GET RESPONSE.
        if let [.., 0x6C, le] = r[..]
            && capdu.len() >= 5
        {
            let mut again = Zeroizing::new(capdu.to_vec());
            if let Some(last) = again.last_mut() {
                *last = le;
            }
            r = Zeroizing::new(self.transmit_once(&again)?);
        }
        let mut rounds = 0;
        while let [.., 0x61, more] = r[..] {
            rounds += 1;
            if rounds > 256 || rapdu.len() > pcsc::MAX_BUFFER_SIZE_EXTENDED {
                return Err(CardError::TooLong);
            }
            rapdu.extend_from_slice(&r[..r.len() - 2]);
            r = Zeroizing::new(self.transmit_once(&[capdu.first().copied().unwrap_or(0) & 0x03, 0xC0, 0, 0, more])?);
        }
        if r.len() < 2 {
            return Err(CardError::Transport);
        }
        rapdu.extend_from_slice(&r);
        Ok(())
    }
}

impl CardSlot for PcscReader {
    fn state(&mut self) -> Result<SlotState, CardError> {
        self.poll(Duration::ZERO)?;
        let s = self.presence();
        self.known = Some(s);
        Ok(s)
    }

    fn wait_event(&mut self, timeout_ms: u32) -> Result<Option<SlotEvent>, CardError> {
        let known = match self.known {
            Some(k) => k,
            None => self.state()?,
        };
        let deadline = Instant::now() + Duration::from_millis(u64::from(timeout_ms));
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if !self.poll(left)? {
                return Ok(None);
            }
            let now = self.presence();
            if now != known {
                self.known = Some(now);
                if now == SlotState::Empty {
                    self.card = None;
                }
                return Ok(Some(match now {
                    SlotState::Present => SlotEvent::Inserted,
                    SlotState::Empty => SlotEvent::Removed,
                }));
            }
            if left.is_zero() {
                return Ok(None);
            }
        }
    }
}
