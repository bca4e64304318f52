//! Who holds administrative power in the card (issue 12, findings 6 and roles): authority
//! belongs to the session that logged the cards in and reaches a tool's session only by
//! approval; a quorum card leaving ends it on the card; operators and auditors can do exactly
//! their row of docs/ceremonies.md's privilege table; a revoked certificate loses its own keys;
//! the quorum still logs in and zeroizes in the error state.

mod common;
mod quorum_rig;

use common::*;
use quorum_rig::*;

use gmhsm_proto::admin::{AdminStatus, CardRole};
use gmhsm_proto::{Capabilities, KeyAlg, Mechanism, Principal, Request, Response, Status};

/// The front panel's session in these tests, and two tools' sessions.
const PANEL: u64 = S;
const TOOL_A: u64 = 101;
const TOOL_B: u64 = 102;

fn state(r: Result<Response, Status>) -> AdminStatus {
    match r {
        Ok(Response::AdminState(s)) => s,
        x => panic!("{x:?}"),
    }
}

fn register_in(r: &mut Rig, session: u64, n: u8) -> Result<Response, Status> {
    r.xs(
        session,
        Request::RegisterApplication {
            cert_sha256: [n; 32],
            name: "app".try_into().unwrap(),
            domains: 1,
            caps: Capabilities::ALL,
            quota: None,
        },
    )
}

fn sign_with(label_: &str) -> Request {
    Request::Sign { label: label(label_), mechanism: Mechanism::sm2_default(), message: vec![1, 2, 3] }
}

/// Guards finding 6: two local sessions, a quorum logged in on the panel's; only the session
/// the panel approved (by the code it asked with) acts under the authority, and only until
/// the quorum's authority ends. Today every local tool shares the panel's session and so its
/// authority, unasked.
#[test]
fn only_the_approved_tool_session_gets_the_authority() {
    let mut r = rig();
    let cards = r.init(3, 2);
    r.login_in(PANEL, &cards[0]).unwrap();
    r.login_in(PANEL, &cards[1]).unwrap();
    assert!(r.status_in(PANEL).authority);
    // Neither tool has it.
    assert_eq!(register_in(&mut r, TOOL_A, 1), Err(Status::AccessDenied));
    assert_eq!(register_in(&mut r, TOOL_B, 1), Err(Status::AccessDenied));
    // Both ask; the panel sees a code waiting and approves A's only.
    let a = state(r.xs(TOOL_A, Request::AdminRequestApproval)).approval.expect("A's code");
    let b = state(r.xs(TOOL_B, Request::AdminRequestApproval)).approval.expect("B's code");
    assert_ne!(a, b);
    assert!(r.status_in(PANEL).awaiting.is_some());
    // A tool cannot approve itself or the other (it holds no authority of its own).
    assert_eq!(r.xs(TOOL_B, Request::AdminApprove { code: a, approve: true }), Err(Status::AccessDenied));
    assert_eq!(r.xs(TOOL_A, Request::AdminApprove { code: a, approve: true }), Err(Status::AccessDenied));
    state(r.xs(PANEL, Request::AdminApprove { code: a, approve: true }));
    state(r.xs(PANEL, Request::AdminApprove { code: b, approve: false }));
    assert!(r.status_in(TOOL_A).authority);
    register_in(&mut r, TOOL_A, 1).unwrap();
    assert_eq!(register_in(&mut r, TOOL_B, 2), Err(Status::AccessDenied), "refused, not approved");
    assert!(!r.status_in(TOOL_B).authority);
    // An approved tool cannot pass the authority on.
    let c = state(r.xs(TOOL_B, Request::AdminRequestApproval)).approval.unwrap();
    assert_eq!(r.xs(TOOL_A, Request::AdminApprove { code: c, approve: true }), Err(Status::AccessDenied));
    // The quorum's authority ends: so does A's, and a new login does not revive it.
    r.xs(PANEL, Request::AdminLogout { serial: Some(cards[1].serial.clone()) }).unwrap();
    assert_eq!(register_in(&mut r, TOOL_A, 3), Err(Status::AccessDenied));
    r.login_in(PANEL, &cards[0]).unwrap();
    r.login_in(PANEL, &cards[2]).unwrap();
    assert!(r.status_in(PANEL).authority);
    assert_eq!(register_in(&mut r, TOOL_A, 3), Err(Status::AccessDenied), "the grant named the old authority");
    assert!(!r.status_in(TOOL_A).authority);
}

/// Guards finding 6: with an operation needing more cards than k, the quorum holds k + 1
/// cards; removing the last one (the panel sends `AdminLogout` for it) used to leave k cards
/// and the authority on the card while the panel said "logged out". Now the card shows them
/// all gone.
#[test]
fn a_quorum_card_leaving_logs_every_card_out_on_the_card() {
    let mut r = rig();
    let cards = r.init(3, 2);
    for c in &cards[..3] {
        r.login_in(PANEL, c).unwrap();
    }
    assert_eq!(r.status_in(PANEL).admins, 3);
    let st = state(r.xs(PANEL, Request::AdminLogout { serial: Some(cards[2].serial.clone()) }));
    assert_eq!((st.admins, st.authority), (0, false));
    assert_eq!(register_in(&mut r, PANEL, 1), Err(Status::AccessDenied));
    // Before the quorum, a card logged out is forgotten alone (its share with it).
    r.login_in(PANEL, &cards[0]).unwrap();
    let st = state(r.xs(PANEL, Request::AdminLogout { serial: Some(cards[0].serial.clone()) }));
    assert_eq!((st.admins, st.authority), (0, false));
    r.login_in(PANEL, &cards[1]).unwrap();
    assert!(!r.status_in(PANEL).authority, "one card is no quorum");
}

/// Guards the fail-closed side of a failed logout: whatever the panel could not say, the
/// authority ends with the panel's session, and every grant from it.
#[test]
fn the_panel_session_closing_ends_its_authority_and_its_grants() {
    let mut r = rig();
    let cards = r.init(3, 2);
    r.login_in(PANEL, &cards[0]).unwrap();
    r.login_in(PANEL, &cards[1]).unwrap();
    let code = state(r.xs(TOOL_A, Request::AdminRequestApproval)).approval.unwrap();
    r.xs(PANEL, Request::AdminApprove { code, approve: true }).unwrap();
    register_in(&mut r, TOOL_A, 1).unwrap();
    r.xs(PANEL, Request::CloseSession).unwrap();
    assert_eq!(register_in(&mut r, TOOL_A, 2), Err(Status::AccessDenied));
    assert!(!r.status_in(PANEL).authority);
}

/// What each role may do (the table in docs/ceremonies.md): every cell is tried. Operators
/// stop and start the service (and read status, run self-tests); auditors read the audit
/// trail, at the console or with an auditor certificate over the private link; neither
/// touches keys, applications or policy. Today an operator card gives nothing, and no
/// certificate can read the audit trail.
#[test]
fn each_role_does_exactly_its_row() {
    let mut r = rig();
    let cards = r.init(3, 2);
    let (op, aud) = (&cards[3], &cards[4]);
    assert_eq!((op.role, aud.role), (CardRole::Operator, CardRole::Auditor));
    let auditor_cert = [0xA5; 32];
    r.login_in(PANEL, &cards[0]).unwrap();
    r.login_in(PANEL, &cards[1]).unwrap();
    r.xs(PANEL, Request::RegisterAuditor { cert_sha256: auditor_cert, name: "auditor".try_into().unwrap() }).unwrap();
    r.xs(PANEL, Request::AdminLogout { serial: None }).unwrap();
    let policy = r.status_in(PANEL).policy.unwrap();

    const OPR: u64 = 201;
    const AUD: u64 = 202;
    assert_eq!(r.login_in(OPR, op).unwrap().role, Some(CardRole::Operator));
    assert_eq!(r.login_in(AUD, aud).unwrap().role, Some(CardRole::Auditor));
    let admin_only = |n: u8| {
        [
            Request::RegisterApplication {
                cert_sha256: [n; 32],
                name: "x".try_into().unwrap(),
                domains: 1,
                caps: Capabilities::ALL,
                quota: None,
            },
            Request::RevokeApplication { cert_sha256: auditor_cert },
            Request::RegisterAuditor { cert_sha256: [n; 32], name: "x".try_into().unwrap() },
            Request::GenerateKey {
                label: label("sdf:sign:7"),
                alg: KeyAlg::Sm2,
                caps: Capabilities::DEFAULT,
                domains: 0,
            },
            Request::SetPolicy { policy },
            Request::KeyExportPolicy { set: Some(true) },
            Request::Zeroize,
        ]
    };
    for (session, who) in [(OPR, "operator"), (AUD, "auditor")] {
        for req in admin_only(9) {
            let what = format!("{who}: {req:?}");
            assert_eq!(r.xs(session, req), Err(Status::AccessDenied), "{what}");
        }
        assert!(matches!(r.xs(session, Request::GetStatus), Ok(Response::Status(_))), "{who} reads the status");
        assert!(matches!(r.xs(session, Request::SelfTest), Ok(Response::Status(_))), "{who} runs self-tests");
    }
    // Operator: the service.
    r.xs(OPR, Request::ServiceStop).unwrap();
    assert!(r.hsm.status().service_stopped);
    r.xs(OPR, Request::ServiceStart).unwrap();
    // Auditor card: not the service.
    assert_eq!(r.xs(AUD, Request::ServiceStop), Err(Status::AccessDenied));
    assert!(matches!(r.xs(AUD, Request::ReadAudit { from_seq: 0, max: 8 }), Ok(Response::Audit(_))));
    // The operator's card leaving ends its login.
    r.xs(OPR, Request::AdminLogout { serial: Some(op.serial.clone()) }).unwrap();
    assert_eq!(r.xs(OPR, Request::ServiceStop), Err(Status::AccessDenied));

    // Auditor certificate over the private link: the audit trail, status and self-tests.
    let auditor = Principal::Application { cert_sha256: auditor_cert };
    let read = r.hsm.execute(&auditor, 300, Request::ReadAudit { from_seq: 0, max: 16 });
    assert!(matches!(read, Ok(Response::Audit(ref v)) if !v.is_empty()), "{read:?}");
    assert!(matches!(r.hsm.execute(&auditor, 300, Request::GetStatus), Ok(Response::Status(_))));
    for req in [
        Request::GenerateKey { label: label("aud-key"), alg: KeyAlg::Sm2, caps: Capabilities::DEFAULT, domains: 0 },
        sign_with("sdf:sign:0"),
        Request::ListKeys,
        Request::ServiceStop,
        Request::GenerateRandom { len: 8 },
    ] {
        let what = format!("{req:?}");
        assert_eq!(r.hsm.execute(&auditor, 300, req), Err(Status::AccessDenied), "auditor cert: {what}");
    }
    // An ordinary application does not read the audit trail.
    assert_eq!(r.hsm.execute(&app(3), 301, Request::ReadAudit { from_seq: 0, max: 8 }), Err(Status::AccessDenied));
    // A tool approved by the operator's session stops the service, nothing more.
    r.login_in(OPR, op).unwrap();
    let code = state(r.xs(TOOL_A, Request::AdminRequestApproval)).approval.unwrap();
    r.xs(OPR, Request::AdminApprove { code, approve: true }).unwrap();
    r.xs(TOOL_A, Request::ServiceStop).unwrap();
    r.xs(TOOL_A, Request::ServiceStart).unwrap();
    assert_eq!(register_in(&mut r, TOOL_A, 4), Err(Status::AccessDenied));
}

/// Guards RevokeApplication: the certificate loses its own keys (owners used to keep full
/// rights whether registered or not), cannot make new ones, and cannot be registered again
/// to get them back.
#[test]
fn a_revoked_certificate_loses_its_own_keys_for_good() {
    let mut r = rig();
    let cards = r.init(3, 2);
    r.login_in(PANEL, &cards[0]).unwrap();
    r.login_in(PANEL, &cards[1]).unwrap();
    register_in(&mut r, PANEL, 1).unwrap();
    let me = app(1);
    r.hsm
        .execute(
            &me,
            400,
            Request::GenerateKey { label: label("mine"), alg: KeyAlg::Sm2, caps: Capabilities::DEFAULT, domains: 0 },
        )
        .unwrap();
    r.hsm.execute(&me, 400, sign_with("mine")).unwrap();
    r.xs(PANEL, Request::RevokeApplication { cert_sha256: [1; 32] }).unwrap();
    assert_eq!(r.hsm.execute(&me, 400, sign_with("mine")), Err(Status::AccessDenied));
    assert_eq!(r.hsm.execute(&me, 401, sign_with("mine")), Err(Status::AccessDenied), "a new session too");
    assert_eq!(
        r.hsm.execute(
            &me,
            401,
            Request::GenerateKey { label: label("again"), alg: KeyAlg::Sm2, caps: Capabilities::DEFAULT, domains: 0 }
        ),
        Err(Status::AccessDenied)
    );
    assert_eq!(register_in(&mut r, PANEL, 1), Err(Status::AccessDenied), "a revoked certificate stays revoked");
    assert_eq!(r.hsm.execute(&me, 401, sign_with("mine")), Err(Status::AccessDenied));
    // The key itself is still there for the administrators (nothing deleted behind them).
    assert!(r.hsm.status().keys >= 3);
    assert!(matches!(r.hsm.execute(&me, 401, Request::Ping), Ok(Response::Pong)));
}

fn quorum_zeroizes(r: &mut Rig, cards: &[Card]) {
    r.login_in(PANEL, &cards[0]).unwrap();
    let st = r.login_in(PANEL, &cards[1]).unwrap();
    assert!(st.authority, "{st:?}");
    assert!(matches!(r.xs(PANEL, Request::ReadAudit { from_seq: 0, max: 8 }), Ok(Response::Audit(_))));
    r.xs(PANEL, Request::Zeroize).unwrap();
    assert_eq!(r.tamper.ram(), [0u8; 64], "DMK wiped");
    assert_eq!(r.hsm.status().keys, 0);
}

/// Guards the quorum's power in the error state: a card whose audit write failed (error
/// state) still lets a quorum log in, read, and zeroize. Today even a quorum's `Zeroize` is
/// refused with `DeviceError`.
#[test]
fn a_quorum_zeroizes_a_card_whose_audit_write_failed() {
    let mut r = rig();
    let cards = r.init(3, 2);
    r.flash_fails.set_failing(true);
    // A refusal is audited: that write fails.
    assert_eq!(register_in(&mut r, TOOL_B, 9), Err(Status::AccessDenied));
    r.flash_fails.set_failing(false);
    let st = r.hsm.status();
    assert!(st.error.as_deref().is_some_and(|e| e.contains("audit")), "{st:?}");
    assert_eq!(r.x(Request::ListKeys), Err(Status::DeviceError), "still refused: crypto and keys");
    quorum_zeroizes(&mut r, &cards);
    let st = r.hsm.status();
    assert!(!st.initialized && st.error.is_none(), "factory state, ready for a new init: {st:?}");
}

/// The same after a boot with a failed noise source: the card reads its store and audit
/// trail, draws its login nonces from the DMK, and zeroizes for a quorum.
#[test]
fn a_quorum_zeroizes_a_card_whose_noise_source_failed() {
    let mut r = rig();
    let cards = r.init(3, 2);
    let mut r = r.reboot(true);
    let st = r.hsm.status();
    assert!(st.error.is_some() && st.initialized, "{st:?}");
    assert_eq!(r.x(Request::GenerateRandom { len: 8 }), Err(Status::DeviceError));
    let n1 = r.xs(PANEL, Request::AdminChallenge).unwrap();
    let n2 = r.xs(PANEL, Request::AdminChallenge).unwrap();
    assert_ne!(n1, n2, "nonces never repeat");
    quorum_zeroizes(&mut r, &cards);
    // The source is still broken: the card says so again rather than claim to be fresh.
    assert!(r.hsm.status().error.is_some());
}
