//! Faults injected into the panel's card link (the simulator's counterpart of a link that
//! loses a frame): with [`LinkFaults::drop_logouts`] every `AdminLogout` the panel sends is
//! lost — never reaches the crypto card — while the link itself stays up and answers
//! everything else. Tests use it to show the panel's fail-closed logout: it retries, then
//! closes its card link, and the card ends every login held on that link.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gmhsm_proto::Request;
use gmhsm_provisioning::CeremonyError;

/// Shared switches of the panel's card link (cheap to clone; all off by default).
#[derive(Clone, Default)]
pub struct LinkFaults {
    drop_logouts: Arc<AtomicBool>,
}

impl LinkFaults {
    /// Lose every `AdminLogout` from now on (`false`: deliver them again).
    pub fn drop_logouts(&self, on: bool) {
        self.drop_logouts.store(on, Ordering::SeqCst);
    }

    /// `Err` when `request` is to be lost: the sender sees a failed exchange, the card sees
    /// nothing, and the link is not closed by it.
    pub(crate) fn lose(&self, request: &Request) -> Result<(), CeremonyError> {
        if matches!(request, Request::AdminLogout { .. }) && self.drop_logouts.load(Ordering::SeqCst) {
            return Err(CeremonyError::Link("AdminLogout lost (injected fault)".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use gmhsm_platform::Key;
    use gmhsm_proto::admin::AdminStatus;
    use gmhsm_proto::{Request, Response, Status};
    use gmhsm_provisioning::{CardLink, UnixCardLink};

    use crate::panel::{FrontPanel, demo};

    const WAIT: Duration = Duration::from_secs(30);

    fn status(tool: &mut UnixCardLink) -> AdminStatus {
        match tool.call(Request::AdminStatus) {
            Ok(Response::AdminState(s)) => s,
            other => panic!("AdminStatus: {other:?}"),
        }
    }

    /// Fail-closed logout at the panel (issue 12, finding 6): when the card never gets the
    /// logout (every `AdminLogout` on the panel's link is lost, the link stays up), the panel
    /// shows `LOGOUT FAILED`, retries, then closes its card link and says so; the card closes
    /// the link's sessions, so the quorum's authority — and the tool session it approved —
    /// end there. Without the link closing, the tool would keep acting under the authority.
    #[test]
    fn a_lost_logout_closes_the_panels_link_and_the_card_ends_the_authority() {
        let dir = std::env::temp_dir().join(format!("gmhsm-panel-faults-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let socket = crate::ceremony::start_card(&dir.join("card")).unwrap();
        let panel = FrontPanel::start(&dir, &socket).unwrap();
        panel.running("test link");
        let cards = demo::DemoCards::create(&dir.join("cards"), 3, 2).unwrap();
        demo::init(&panel, &cards).unwrap();
        demo::quorum_login(&panel, &cards).unwrap();

        // A tool on a card link of its own, approved at the panel, acts under the quorum.
        let mut tool = UnixCardLink::connect(&socket, 7).unwrap();
        let code = match tool.call(Request::AdminRequestApproval) {
            Ok(Response::AdminState(s)) => s.approval.expect("an approval code"),
            other => panic!("AdminRequestApproval: {other:?}"),
        };
        let mut lcd = panel.view();
        let asks = format!("session {code:04}?");
        lcd.wait_for("the approval page", WAIT, |l| l.get(1) == Some(&asks)).unwrap();
        panel.press(&[Key::Ok]);
        let deadline = Instant::now() + WAIT;
        while !status(&mut tool).authority {
            assert!(Instant::now() < deadline, "the tool was never approved");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(tool.call(Request::ServiceStop).map(drop), Ok(()), "approved: the tool acts under the quorum");
        assert_eq!(tool.call(Request::ServiceStart).map(drop), Ok(()));

        // Every logout from the panel is lost from now on; the quorum's last card leaves.
        panel.faults().drop_logouts(true);
        panel.remove().unwrap();
        lcd.expect(&["READY", "LOGOUT FAILED"], WAIT).unwrap();
        lcd.expect(&["LOGOUT UNCONFIRMED", "Card link closed:", "the HSM ended the"], WAIT).unwrap();

        // On the card: the panel's session closed with its link; the authority and the
        // grant that hung on it are gone.
        let st = status(&mut tool);
        assert!(!st.authority && st.admins == 0 && st.role.is_none(), "{st:?}");
        assert_eq!(tool.call_in(7, Request::ServiceStop).map(|r| r.map(drop)).unwrap(), Err(Status::AccessDenied));
        // The panel comes back on a new link, with nobody logged in.
        lcd.wait_for("READY", WAIT, |l| l.first().is_some_and(|r| r == "READY") && l[1] == "test link").unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
