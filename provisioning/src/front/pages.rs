//! The pages the panel shows between ceremonies: boot progress, the device's state and link
//! address, sessions and load, a stopped service, card details, alarms, the operator's or
//! auditor's page, and the approval and confirmation pages.

use std::time::Instant;

use gmhsm_lcd::screens::{DeviceState, Frame, Page, render};
use gmhsm_platform::{Keypad, TextDisplay};
use gmhsm_proto::{CardRole, Request, Response};

use super::station::{Loop, Phase, REFRESH, Reader, SESSION};
use super::{Shared, menu};
use crate::CardLink;

impl<R: Reader, D: TextDisplay, K: Keypad> Loop<R, D, K> {
    /// Requests per second from the last two readings of the card's counter (the counter
    /// restarts at a card reboot: a reading below the previous one starts over).
    fn measure(&mut self, now: Instant) {
        let Some(Ok(s)) = &self.status else {
            self.counted = None;
            self.rate = None;
            return;
        };
        self.rate = match self.counted {
            Some((before, at)) if s.requests >= before => {
                let ms = now.duration_since(at).as_millis().max(1);
                Some(u64::try_from(u128::from(s.requests - before) * 1000 / ms).unwrap_or(u64::MAX))
            }
            _ => None,
        };
        self.counted = Some((s.requests, now));
    }

    pub(super) fn put(&mut self, f: &Frame) {
        let _ = f.show(&mut self.st.panel.display);
    }

    pub(super) fn idle_page(&mut self, now: Instant) {
        let phase = Shared::get(&self.shared.phase);
        let (cols, rows) = (20, 4);
        if let Phase::Boot { step, done, total } = phase {
            self.put(&render(&Page::Boot { step: &step, done, total }, cols, rows));
            return;
        }
        if self.refreshed.is_none_or(|t| now.saturating_duration_since(t) >= REFRESH) {
            self.refreshed = Some(now);
            self.status = Some(match self.st.link.call_in(SESSION, Request::GetStatus) {
                Ok(Ok(Response::Status(s))) => Ok(s),
                Ok(Ok(_)) => Err("card: odd answer".into()),
                Ok(Err(s)) => Err(format!("card: {s}")),
                Err(_) => Err("card link down".into()),
            });
            self.measure(now);
        }
        if let Some(code) = self.asking {
            let powers = match self.role.as_ref().map(|r| r.role) {
                Some(CardRole::Operator) => "operator",
                Some(_) => "auditor",
                None => "quorum",
            };
            self.put(&menu::approval_page(code, powers));
            return;
        }
        if let Some(a) = self.confirming {
            self.put(&menu::confirm_page(a));
            return;
        }
        let link = Shared::get(&self.shared.link);
        let f = match &self.status {
            None => return,
            Some(Err(why)) => render(&Page::Alarm { text: why }, cols, rows),
            Some(Ok(s)) => {
                let state = match (&s.error, s.initialized, &self.authority) {
                    (Some(e), _, _) if e.contains("tamper") => DeviceState::Tampered,
                    (Some(_), _, _) => DeviceState::Error,
                    (None, false, _) => DeviceState::Uninitialized,
                    (None, true, Some(_)) => DeviceState::AdminLoggedIn,
                    (None, true, None) => DeviceState::Ready,
                };
                match (self.page, &s.error, self.role.as_ref().map(|r| r.role)) {
                    (0, _, Some(role)) => menu::role_page(role, s),
                    (0, Some(e), None) => render(&Page::Alarm { text: e }, cols, rows),
                    (0, None, None) => {
                        let mut f = render(&Page::Status { state, link: &link }, cols, rows);
                        match &self.authority {
                            Some(a) => f.set(2, format_args!("Quorum {} of {}", a.status.admins, a.status.k)),
                            None if !s.initialized => f.set(2, format_args!("Awaiting init")),
                            None => f.set(2, format_args!("{} keys", s.keys)),
                        }
                        if s.service_stopped {
                            f.set(2, format_args!("SERVICE STOPPED"));
                        }
                        match self.rate {
                            Some(r) => f.set(3, format_args!("Sess {}  {r} req/s", s.sessions)),
                            None => f.set(3, format_args!("Sess {}", s.sessions)),
                        }
                        f
                    }
                    _ => {
                        let mut f = render(&Page::Status { state, link: &link }, cols, rows);
                        f.set(1, format_args!("{} keys, boot {}", s.keys, s.boots));
                        f.set(2, format_args!("audit #{}", s.audit.last_seq));
                        f.set(3, format_args!("{} requests", s.requests));
                        f
                    }
                }
            }
        };
        self.put(&f);
    }
}
