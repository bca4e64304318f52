//! Tests of the card's session bounds: expiry without `CloseSession`, the state budget.

use super::*;

fn app(n: u8) -> Principal {
    Principal::Application { cert_sha256: [n; 32] }
}

fn key() -> Handle {
    Handle::Key(Zeroizing::new([7u8; 16]))
}

/// Guards finding 7: a session whose `CloseSession` never came (the daemon's link dropped)
/// is reclaimed once idle for `IDLE_EXPIRY_MS` of the card's clock; a session in use stays.
/// On the old code sessions lived until `CloseSession` or until 4096 others pushed them out.
#[test]
fn sessions_without_close_session_are_reclaimed_when_idle() {
    let mut s = Sessions::default();
    s.tick(1_000);
    for id in 1..=3 {
        s.touch(id, false);
        s.get(id, &app(1)).unwrap().insert(key()).unwrap();
    }
    assert_eq!((s.seen(), s.map.len()), (3, 3));
    assert!(s.state_bytes() > 0);
    // Session 3 keeps working; 1 and 2 go quiet.
    s.tick(1_000 + IDLE_EXPIRY_MS / 2);
    s.touch(3, false);
    s.get(3, &app(1)).unwrap();
    s.tick(1_000 + IDLE_EXPIRY_MS + EXPIRY_SCAN_MS);
    assert_eq!(s.seen(), 1, "the idle sessions were reclaimed");
    assert!(s.map.contains_key(&3) && !s.map.contains_key(&1) && !s.map.contains_key(&2));
    assert_eq!(s.state_bytes(), SMALL_BYTES, "their state was released");
    // A session id the daemon uses again after expiry starts empty.
    assert!(matches!(s.get(1, &app(1)).unwrap().take(1), Err(Error::UnknownHandle)));
    s.touch(3, true);
    assert_eq!(s.seen(), 0, "CloseSession still closes at once");
}

/// Guards finding 7: however many sessions fill up with handles, the card holds at most
/// `MAX_STATE_BYTES` of session state (plus the one handle being added), dropping the least
/// recently used sessions; the asking session is never the one dropped.
#[test]
fn session_state_is_bounded_in_bytes_least_recently_used_first() {
    let mut s = Sessions::default();
    let per_session = MAX_HANDLES * SMALL_BYTES;
    let sessions = (2 * MAX_STATE_BYTES / per_session) as u64;
    for id in 0..sessions {
        let sess = s.get(id, &app(2)).unwrap();
        for _ in 0..MAX_HANDLES {
            sess.insert(key()).unwrap();
        }
        assert!(s.state_bytes() <= MAX_STATE_BYTES + per_session, "session {id}: {}", s.state_bytes());
    }
    assert!(!s.map.contains_key(&0), "the least recently used went first");
    assert!(s.map.contains_key(&(sessions - 1)), "the newest stays");
    assert_eq!(s.get(sessions - 1, &app(2)).unwrap().handles.len(), MAX_HANDLES);
    s.clear();
    assert_eq!(s.state_bytes(), 0);
}

/// The session count is bounded too, least recently seen first, and sessions stay bound to
/// their principal.
#[test]
fn sessions_are_bounded_in_number_and_bound_to_their_principal() {
    let mut s = Sessions::default();
    for id in 0..(MAX_SESSIONS as u64 + 10) {
        s.tick(id);
        s.touch(id, false);
        s.get(id, &app(3)).unwrap();
    }
    assert_eq!((s.seen(), s.map.len()), (MAX_SESSIONS, MAX_SESSIONS));
    assert!(!s.map.contains_key(&0) && s.map.contains_key(&(MAX_SESSIONS as u64 + 9)));
    assert!(matches!(s.get(MAX_SESSIONS as u64 + 9, &app(4)), Err(Error::AccessDenied)));
}
