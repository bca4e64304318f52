//! The panel's jobs (the ceremonies it runs on request), the watch over a login's last card,
//! the fail-closed logout and the people's answer to a tool's request for approval.

use std::time::Instant;

use gmhsm_platform::{Keypad, SlotState, TextDisplay};
use gmhsm_proto::{AdminOp, Request, Response};

use super::station::{HOLD, Job, JobError, Loop, REFRESH, Reader, SESSION};
use super::{Shared, menu};
use crate::{CardLink, CeremonyError};

impl<R: Reader, D: TextDisplay, K: Keypad> Loop<R, D, K> {
    pub(super) fn job(&mut self, job: Job) -> Result<&'static str, JobError> {
        let st = &mut self.st;
        match job {
            Job::Init(plan) => Ok(st.init(&plan).map(|()| "done")?),
            Job::Login | Job::RoleLogin(_) | Job::CheckCard | Job::ChangePin
                if self.authority.is_some() || self.role.is_some() =>
            {
                st.panel.text(&["Refused", "Someone is logged in", "Log out first"])?;
                Err(JobError::Refused("someone is logged in at the panel: log out first"))
            }
            Job::CheckCard => match st.check_card()? {
                r if r.state == gmhsm_icc::CardState::Locked => Ok("card locked"),
                r if r.login_ok => Ok("card OK"),
                _ => Ok("card refused by the HSM"),
            },
            Job::ChangePin => Ok(st.change_pin().map(|()| "PIN changed")?),
            Job::RoleLogin(role) => match st.role_login(role) {
                Ok(r) => {
                    self.role = Some(r);
                    Ok("logged in")
                }
                Err(e) => {
                    self.end_for_sure();
                    Err(e.into())
                }
            },
            Job::Login => {
                match st.quorum_login(AdminOp::KeyManagement) {
                    Ok(a) => {
                        self.authority = Some(a);
                        Ok("quorum reached")
                    }
                    Err(e) => {
                        // The cards counted so far must not stay counted.
                        self.end_for_sure();
                        Err(e.into())
                    }
                }
            }
            Job::Register { cert_sha256, name, domains, caps, quota } => {
                let Some(a) = self.authority.as_mut() else {
                    st.panel.text(&["Refused", "No quorum logged in"])?;
                    return Err(JobError::Refused("no quorum logged in at the panel (log in first: --login)"));
                };
                st.panel.prompt(gmhsm_lcd::Prompt::Working)?;
                match a.register_application_with_quota(st, cert_sha256, &name, domains, caps, quota) {
                    Ok(()) => {
                        st.panel.text(&["Application", "registered", &name])?;
                        Ok("registered")
                    }
                    Err(e) => {
                        if e == CeremonyError::AuthorityEnded {
                            self.authority = None;
                        }
                        st.panel.text(&["Refused", "No quorum authority"])?;
                        Err(e.into())
                    }
                }
            }
            Job::UnblockPin => self.ending_authority(|a, st| a.unblock(st)).map(|()| "PIN unblocked"),
            Job::Zeroize => self.ending_authority(|a, st| a.zeroize(st)).map(|()| "zeroized"),
            Job::Revoke { cert_sha256 } => self.revoke(cert_sha256),
            Job::Logout => {
                let (quorum, role) = (self.authority.take(), self.role.take());
                if quorum.is_none() && role.is_none() {
                    return Err(JobError::Refused("nobody is logged in at the panel"));
                }
                self.asking = None;
                self.confirming = None;
                let r = match quorum {
                    Some(a) => a.logout(st),
                    None => st.link.call(Request::AdminLogout { serial: None }).and_then(|_| st.await_removal(false)),
                };
                if !self.end_for_sure() {
                    return Err(JobError::Refused("the crypto card did not confirm the logout: link closed"));
                }
                r?;
                Ok("logged out")
            }
        }
    }

    /// Run `ceremony` with the quorum's authority, which ends with it (done, refused or
    /// cancelled): every card logged out and confirmed, or the link closed.
    fn ending_authority(
        &mut self,
        ceremony: impl FnOnce(
            crate::Authority,
            &mut crate::Station<super::link::LazyLink, R, D, K>,
        ) -> Result<(), CeremonyError>,
    ) -> Result<(), JobError> {
        let Some(a) = self.authority.take() else {
            self.st.panel.text(&["Refused", "No quorum logged in"])?;
            return Err(JobError::Refused("no quorum logged in at the panel (log in first: --login)"));
        };
        self.asking = None;
        self.confirming = None;
        let r = ceremony(a, &mut self.st);
        if !self.end_for_sure() {
            return Err(JobError::Refused("the crypto card did not confirm the logout: link closed"));
        }
        Ok(r?)
    }

    /// Revoke an application under the quorum's authority (which stays).
    fn revoke(&mut self, cert_sha256: [u8; 32]) -> Result<&'static str, JobError> {
        let st = &mut self.st;
        let Some(a) = self.authority.as_mut() else {
            st.panel.text(&["Refused", "No quorum logged in"])?;
            return Err(JobError::Refused("no quorum logged in at the panel (log in first: --login)"));
        };
        st.panel.prompt(gmhsm_lcd::Prompt::Working)?;
        let short: String = cert_sha256[..4].iter().map(|b| format!("{b:02x}")).collect();
        match a.revoke_application(st, cert_sha256) {
            Ok(()) => {
                st.panel.text(&["Application", "revoked", &format!("cert {short}...")])?;
                Ok("revoked")
            }
            Err(e) => {
                if e == CeremonyError::AuthorityEnded {
                    self.authority = None;
                }
                st.panel.text(&["Revoke refused", &format!("cert {short}...")])?;
                Err(e.into())
            }
        }
    }

    /// The quorum's authority (or an operator's or auditor's login) ends when its last card
    /// leaves the reader or it lapses.
    pub(super) fn watch(&mut self, now: Instant) {
        if self.authority.is_none() && self.role.is_none() {
            return;
        }
        let gone = self.st.reader.state().map_or(true, |s| s == SlotState::Empty);
        let due = self.refreshed.is_none_or(|t| now.saturating_duration_since(t) >= REFRESH);
        if !gone && !due {
            return;
        }
        let checked = match (self.authority.as_mut(), self.role.as_mut()) {
            (Some(a), _) => a.check(&mut self.st).map(|()| a.status.awaiting),
            (None, Some(r)) => r.check(&mut self.st).map(|()| r.status.awaiting),
            (None, None) => return,
        };
        match checked {
            Ok(awaiting) => {
                // A tool that asks now is shown at once, over the page a job ended on.
                if awaiting.is_some() && awaiting != self.asking {
                    self.hold = None;
                }
                self.asking = awaiting;
                return;
            }
            Err(e) => log::info!("front panel: login ended ({e})"),
        }
        {
            self.authority = None;
            self.role = None;
            self.asking = None;
            self.confirming = None;
            // Fail closed: a logout the card did not confirm closes the panel's link, and the
            // card ends every authority held in the link's sessions.
            if !self.end_for_sure() {
                log::warn!("front panel: logout unconfirmed: card link closed");
            }
            let why = if gone { "card removed" } else { "lapsed" };
            Shared::set(&self.shared.last, format!("authority ended: {why}"));
            self.hold = Some(now + HOLD);
            self.refreshed = None;
        }
    }

    /// Log every card out and confirm it with the card (twice at most); failing that, close
    /// the panel's card link (the card then closes its sessions: every login, authority and
    /// approval held there ends) and say so on the LCD. `true` when the card confirmed it.
    pub(super) fn end_for_sure(&mut self) -> bool {
        for _ in 0..2 {
            let asked = self.st.link.call_in(SESSION, Request::AdminLogout { serial: None });
            let status = self.st.link.call_in(SESSION, Request::AdminStatus);
            if matches!((asked, status), (Ok(Ok(_)), Ok(Ok(Response::AdminState(s))))
                if !s.authority && s.admins == 0 && s.role.is_none())
            {
                return true;
            }
        }
        self.st.link.link = None;
        self.put(&menu::link_closed_page());
        false
    }

    /// The people's answer to "Approve tool NNNN?".
    pub(super) fn answer_approval(&mut self, code: u16, approve: bool) {
        self.asking = None;
        self.refreshed = None;
        let r = self.st.link.call_in(SESSION, Request::AdminApprove { code, approve });
        let outcome = match r {
            Ok(Ok(_)) if approve => format!("tool {code:04} approved"),
            Ok(Ok(_)) => format!("tool {code:04} refused"),
            Ok(Err(s)) => format!("approval of {code:04}: card refused ({s})"),
            Err(e) => format!("approval of {code:04}: {e}"),
        };
        log::info!("front panel: {outcome}");
        Shared::set(&self.shared.last, outcome);
    }
}
