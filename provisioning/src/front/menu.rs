//! The pages the panel shows to an operator or auditor logged in with their card, the
//! operator's menu (service stop / start, self-test) and its confirmation and result pages,
//! and the approval page for a tool's session. Pure rendering: what each page says is tested
//! here, on the panel's 20x4 geometry (`docs/ceremonies.md` §Front panel menus).

use gmhsm_lcd::screens::Frame;
use gmhsm_proto::{CardRole, StatusInfo};

pub const COLS: u8 = 20;
pub const ROWS: u8 = 4;

/// What an operator asked for from the menu, before OK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    StopService,
    StartService,
}

/// What a key pressed on the role page asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Ask to confirm this action.
    Confirm(Action),
    SelfTest,
}

/// The operator's menu: `1` stops the service (starts it when stopped), `2` runs the
/// self-tests. Other roles and keys choose nothing.
pub fn choose(role: CardRole, digit: u8, service_stopped: bool) -> Option<Choice> {
    match (role, digit) {
        (CardRole::Operator, 1) if service_stopped => Some(Choice::Confirm(Action::StartService)),
        (CardRole::Operator, 1) => Some(Choice::Confirm(Action::StopService)),
        (CardRole::Operator, 2) => Some(Choice::SelfTest),
        _ => None,
    }
}

fn page(lines: [&str; 4]) -> Frame {
    let mut f = Frame::new(COLS, ROWS);
    for (r, l) in lines.iter().enumerate() {
        f.set(r as u8, format_args!("{l}"));
    }
    f
}

/// The page an operator or auditor sees while their card is in the reader.
pub fn role_page(role: CardRole, s: &StatusInfo) -> Frame {
    let mut f = Frame::new(COLS, ROWS);
    if role == CardRole::Operator {
        f.set(0, format_args!("OPERATOR LOGGED IN"));
        match (&s.error, s.service_stopped) {
            (Some(e), _) => f.set(1, format_args!("ALARM: {e}")),
            (None, true) => f.set(1, format_args!("SERVICE STOPPED")),
            (None, false) => f.set(1, format_args!("Service running")),
        }
        let verb = if s.service_stopped { "Start" } else { "Stop " };
        f.set(2, format_args!("1 {verb} 2 Self-test"));
    } else {
        f.set(0, format_args!("AUDITOR LOGGED IN"));
        f.set(1, format_args!("Audit #{}..#{}", s.audit.first_seq, s.audit.last_seq));
        match s.audit.chain_break {
            Some(seq) => f.set(2, format_args!("CHAIN BROKEN #{seq}")),
            None => f.set(2, format_args!("Audit chain OK")),
        }
    }
    f.set(3, format_args!("Remove card=log out"));
    f
}

/// "Are you sure?" for an operator's action.
pub fn confirm_page(a: Action) -> Frame {
    match a {
        Action::StopService => {
            page(["Stop service?", "Applications will be", "refused until start", "OK=yes  CANCEL=no"])
        }
        Action::StartService => page(["Start service?", "Applications will be", "served again", "OK=yes  CANCEL=no"]),
    }
}

/// What an action did (`Err`: why the crypto card refused it).
pub fn action_page(a: Action, r: &Result<(), String>) -> Frame {
    match (a, r) {
        (Action::StopService, Ok(())) => page(["Service stopped", "Applications are", "refused until start", ""]),
        (Action::StartService, Ok(())) => page(["Service started", "Applications are", "served again", ""]),
        (_, Err(why)) => page(["Refused by the HSM", why, "", ""]),
    }
}

/// The self-tests' outcome (`Err`: the reason the card gives, now in its error state).
pub fn self_test_page(r: &Result<(), String>) -> Frame {
    match r {
        Ok(()) => page(["Self-test passed", "SM2 SM3 SM4 RSA DRBG", "all OK", ""]),
        Err(why) => page(["SELF-TEST FAILED", why, "HSM in error state", ""]),
    }
}

/// A tool on the appliance asks for its session to act with the powers of whoever is
/// logged in at the panel.
pub fn approval_page(code: u16, powers: &str) -> Frame {
    let mut f = page(["Approve tool", "", "", "OK / CANCEL"]);
    f.set(1, format_args!("session {code:04}?"));
    f.set(2, format_args!("({powers} powers)"));
    f
}

/// The logout was not confirmed by the crypto card: the panel closed its card link, and the
/// card ends every login and approval held in that link's sessions.
pub fn link_closed_page() -> Frame {
    page(["LOGOUT UNCONFIRMED", "Card link closed:", "the HSM ended the", "login and approvals"])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(stopped: bool) -> StatusInfo {
        StatusInfo {
            initialized: true,
            error: None,
            keys: 3,
            boots: 1,
            audit: gmhsm_proto::AuditState { first_seq: 1, last_seq: 9, chain_break: None },
            service_stopped: stopped,
            sessions: 1,
            requests: 9,
        }
    }

    fn lines(f: &Frame) -> Vec<String> {
        (0..ROWS).map(|r| f.line(r).trim_end().to_string()).collect()
    }

    /// Every page fits the 20x4 LCD without losing a word (a cut row would read wrong).
    #[test]
    fn every_page_fits_the_lcd() {
        let mut texts: Vec<[&str; 4]> = vec![
            ["OPERATOR LOGGED IN", "SERVICE STOPPED", "1 Start 2 Self-test", "Remove card=log out"],
            ["AUDITOR LOGGED IN", "Audit chain OK", "", ""],
            ["Stop service?", "Applications will be", "refused until start", "OK=yes  CANCEL=no"],
            ["Self-test passed", "SM2 SM3 SM4 RSA DRBG", "all OK", ""],
            ["LOGOUT UNCONFIRMED", "Card link closed:", "the HSM ended the", "login and approvals"],
            ["Approve tool", "session 0042?", "(operator powers)", "OK / CANCEL"],
        ];
        texts.push(["SELF-TEST FAILED", "", "HSM in error state", ""]);
        for t in texts {
            assert!(t.iter().all(|l| l.len() <= usize::from(COLS)), "{t:?} is wider than the LCD");
        }
        assert_eq!(lines(&approval_page(42, "operator"))[..3], ["Approve tool", "session 0042?", "(operator powers)"]);
        assert_eq!(lines(&confirm_page(Action::StopService))[2], "refused until start");
        assert_eq!(lines(&link_closed_page())[3], "login and approvals");
    }

    #[test]
    fn the_operator_menu_follows_the_service_state() {
        let f = role_page(CardRole::Operator, &status(false));
        assert_eq!(lines(&f), ["OPERATOR LOGGED IN", "Service running", "1 Stop  2 Self-test", "Remove card=log out"]);
        assert_eq!(
            lines(&role_page(CardRole::Operator, &status(true)))[1..3],
            ["SERVICE STOPPED", "1 Start 2 Self-test"]
        );
        assert_eq!(choose(CardRole::Operator, 1, false), Some(Choice::Confirm(Action::StopService)));
        assert_eq!(choose(CardRole::Operator, 1, true), Some(Choice::Confirm(Action::StartService)));
        assert_eq!(choose(CardRole::Operator, 2, false), Some(Choice::SelfTest));
        assert_eq!(choose(CardRole::Operator, 3, false), None);
        // An auditor's card stops nothing from the panel.
        assert_eq!(choose(CardRole::Auditor, 1, false), None);
        let a = lines(&role_page(CardRole::Auditor, &status(false)));
        assert_eq!(a[0], "AUDITOR LOGGED IN");
        assert_eq!(a[2], "Audit chain OK");
    }
}
