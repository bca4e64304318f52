//! What an operator does from the panel's menu: stop or start the service (after OK on its
//! confirmation page) and run the self-tests, each on the panel's own card session, where
//! the operator's card logged in; the card checks the role. The result page stays a moment.

use gmhsm_platform::{Keypad, TextDisplay};
use gmhsm_proto::{Request, Response};

use super::Shared;
use super::menu::{self, Action};
use super::station::{Loop, Reader, SESSION};
use crate::CardLink;

impl<R: Reader, D: TextDisplay, K: Keypad> Loop<R, D, K> {
    /// Show `f` for a moment and record `outcome` as the panel's last result.
    fn result(&mut self, f: &gmhsm_lcd::screens::Frame, outcome: String) {
        self.put(f);
        log::info!("front panel: {outcome}");
        Shared::set(&self.shared.last, outcome);
        self.ended = true;
        self.refreshed = None;
    }

    /// Stop or start the service (confirmed with OK).
    pub(super) fn operate(&mut self, a: Action) {
        let request = match a {
            Action::StopService => Request::ServiceStop,
            Action::StartService => Request::ServiceStart,
        };
        let r = match self.st.link.call_in(SESSION, request) {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(status)) => Err(status.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let outcome = match (&r, a) {
            (Ok(()), Action::StopService) => "service stopped".to_string(),
            (Ok(()), Action::StartService) => "service started".to_string(),
            (Err(e), _) => format!("{a:?} refused: {e}"),
        };
        self.result(&menu::action_page(a, &r), outcome);
    }

    /// Run the card's known-answer self-tests; a failure puts the card in its error state
    /// (the alarm page shows why).
    pub(super) fn self_test(&mut self) {
        self.put(&gmhsm_lcd::screens::render(
            &gmhsm_lcd::screens::Page::Prompt(gmhsm_lcd::Prompt::Working),
            menu::COLS,
            menu::ROWS,
        ));
        let r = match self.st.link.call_in(SESSION, Request::SelfTest) {
            Ok(Ok(Response::Status(s))) => s.error.map_or(Ok(()), |e| Err(e.to_string())),
            Ok(Ok(_)) => Err("odd answer".to_string()),
            Ok(Err(status)) => Err(status.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let outcome = match &r {
            Ok(()) => "self-test passed".to_string(),
            Err(e) => format!("self-test failed: {e}"),
        };
        self.result(&menu::self_test_page(&r), outcome);
    }
}
