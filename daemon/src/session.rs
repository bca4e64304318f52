//! The private link's grammar for one connection, without sockets: frames in, actions out.
//!
//! A [`Session`] turns each frame body from the client into an [`Action`]: either an answer
//! the daemon gives itself (bad frame, wrong version, too many requests in flight) or a
//! request to relay to the card. It counts requests in flight; the caller reports each
//! answer from the card with [`Session::completed`].

use std::ops::Range;

use gmhsm_proto::frame::{self, FrameError, FrameHeader};
use gmhsm_proto::{PROTOCOL_VERSION, ServerFrame, Status};

/// What to do with one frame from the client.
// Transient (made and consumed per frame): the size difference costs a move, not memory.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this frame back to the client; nothing goes to the card.
    Reply(ServerFrame),
    /// Relay the request to the card and answer the client with request id `id`. `kind` is
    /// its variant name for the logs (`Request::name`, never its fields). `raw` is where the
    /// request's bytes are in the frame body: they decoded, and are relayed as they came
    /// (`frame::encode_card_frame`) rather than encoded again. `cost`: its rate-limit tokens
    /// from the card's cost table ([`gmhsm_proto::Request::cost`]).
    Relay { id: u64, kind: &'static str, cost: u32, raw: Range<usize> },
}

/// Per-connection protocol state.
#[derive(Debug)]
pub struct Session {
    in_flight: usize,
    max_in_flight: usize,
}

impl Session {
    /// A session that allows `max_in_flight` requests at the card at once.
    pub fn new(max_in_flight: usize) -> Self {
        Session { in_flight: 0, max_in_flight }
    }

    /// Requests relayed and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Decide what to do with one complete frame body.
    ///
    /// A frame whose header decodes but whose version is not [`PROTOCOL_VERSION`] gets
    /// `UnsupportedVersion` even if its body does not decode (a newer client may send
    /// requests this build does not know).
    pub fn on_frame(&mut self, body: &[u8]) -> Action {
        let (frame, raw) = match frame::decode_client(body) {
            Ok(decoded) => decoded,
            Err(FrameError::Malformed { header: Some(h) }) if h.version != PROTOCOL_VERSION => {
                return Action::Reply(unsupported_version(h.id));
            }
            Err(FrameError::Malformed { header }) => {
                return Action::Reply(reply(header.map_or(0, |h| h.id), Status::BadFrame));
            }
            Err(_) => return Action::Reply(reply(0, Status::BadFrame)),
        };
        let id = frame.header.id;
        if frame.header.version != PROTOCOL_VERSION {
            return Action::Reply(unsupported_version(id));
        }
        if self.in_flight >= self.max_in_flight {
            return Action::Reply(reply(id, Status::Busy));
        }
        self.in_flight += 1;
        Action::Relay { id, kind: frame.request.name(), cost: frame.request.cost(), raw }
    }

    /// The answer to a deframing error (the frame's header is unknown, so its id is 0).
    pub fn on_deframe_error(&self, err: FrameError) -> ServerFrame {
        match err {
            FrameError::TooLarge { .. } => reply(0, Status::FrameTooLarge),
            _ => reply(0, Status::BadFrame),
        }
    }

    /// One relayed request was answered (or given up on).
    pub fn completed(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }
}

/// A frame carrying `status` for request `id`.
pub fn reply(id: u64, status: Status) -> ServerFrame {
    ServerFrame { header: FrameHeader { version: PROTOCOL_VERSION, id }, result: Err(status) }
}

/// `ok`, or the status's variant name (without fields), for logs.
pub fn status_name(status: Option<&Status>) -> String {
    match status {
        None => "ok".into(),
        Some(s) => {
            let full = format!("{s:?}");
            full.split([' ', '{', '(']).next().unwrap_or("?").to_owned()
        }
    }
}

fn unsupported_version(id: u64) -> ServerFrame {
    reply(id, Status::UnsupportedVersion { supported: PROTOCOL_VERSION })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gmhsm_proto::ClientFrame;
    use gmhsm_proto::Request;

    fn body(version: u16, id: u64, request: Request) -> Vec<u8> {
        let wire = frame::encode(&ClientFrame { header: FrameHeader { version, id }, request }).expect("encode");
        wire[4..].to_vec()
    }

    #[test]
    fn a_batch_costs_per_message() {
        let batch = |n: usize| Request::SignBatch {
            label: gmhsm_proto::Label::try_from("k").unwrap(),
            mechanism: gmhsm_proto::Mechanism::Sm2Digest,
            messages: vec![gmhsm_proto::ByteBuf::from(vec![0u8; 32]); n],
        };
        let mut s = Session::new(4);
        match s.on_frame(&body(PROTOCOL_VERSION, 9, batch(64))) {
            Action::Relay { id: 9, kind: "SignBatch", cost: 64, .. } => {}
            other => panic!("{other:?}"),
        }
        // An empty batch still costs a request (the card refuses it); a Ping costs nothing.
        assert_eq!((batch(0).cost(), Request::Ping.cost()), (1, 0));
        let decrypts = |n: usize| Request::DecryptBatch {
            label: gmhsm_proto::Label::try_from("k").unwrap(),
            mechanism: gmhsm_proto::CipherMech::Sm2 { layout: gmhsm_proto::Sm2Layout::C1C3C2 },
            ciphertexts: vec![gmhsm_proto::ByteBuf::from(vec![4u8; 120]); n],
        };
        match s.on_frame(&body(PROTOCOL_VERSION, 10, decrypts(32))) {
            Action::Relay { id: 10, kind: "DecryptBatch", cost: 64, .. } => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(decrypts(0).cost(), 2, "one SM2 decryption's worth");
    }

    #[test]
    fn good_frame_is_relayed_with_its_id() {
        let mut s = Session::new(4);
        let b = body(PROTOCOL_VERSION, 7, Request::Ping);
        match s.on_frame(&b) {
            Action::Relay { id: 7, kind: "Ping", cost: 0, raw } => {
                assert_eq!(&b[raw], &[0u8][..], "Ping is variant 0")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.in_flight(), 1);
        s.completed();
        assert_eq!(s.in_flight(), 0);
    }

    #[test]
    fn wrong_version_is_refused_even_with_undecodable_body() {
        let mut s = Session::new(4);
        assert_eq!(s.on_frame(&body(99, 3, Request::Ping)), Action::Reply(unsupported_version(3)));
        let mut b = body(99, 5, Request::Ping);
        b.truncate(b.len() - 1);
        b.push(0xEE); // not a request variant
        assert_eq!(s.on_frame(&b), Action::Reply(unsupported_version(5)));
        assert_eq!(s.in_flight(), 0);
    }

    #[test]
    fn garbage_gets_bad_frame_with_id_when_header_decodes() {
        let mut s = Session::new(4);
        assert_eq!(s.on_frame(&[0xff, 0xff, 0xff]), Action::Reply(reply(0, Status::BadFrame)));
        assert_eq!(s.on_frame(&[]), Action::Reply(reply(0, Status::BadFrame)));
        let mut b = body(PROTOCOL_VERSION, 42, Request::Ping);
        b.truncate(b.len() - 1);
        b.push(0xEE);
        assert_eq!(s.on_frame(&b), Action::Reply(reply(42, Status::BadFrame)));
        assert_eq!(s.in_flight(), 0);
    }

    #[test]
    fn busy_past_the_in_flight_bound() {
        let mut s = Session::new(2);
        for id in 1..=2 {
            assert!(matches!(s.on_frame(&body(PROTOCOL_VERSION, id, Request::Ping)), Action::Relay { .. }));
        }
        assert_eq!(s.on_frame(&body(PROTOCOL_VERSION, 3, Request::Ping)), Action::Reply(reply(3, Status::Busy)));
        s.completed();
        assert!(matches!(s.on_frame(&body(PROTOCOL_VERSION, 4, Request::Ping)), Action::Relay { id: 4, .. }));
    }

    #[test]
    fn log_names_carry_no_fields() {
        // The request's kind is proto's one name per variant (`Request::name`), the appended
        // requests included.
        let mut s = Session::new(4);
        for (request, name) in [
            (Request::Ping, "Ping"),
            (Request::AuditCheckpoint { seq: 9 }, "AuditCheckpoint"),
            (Request::AdminApprove { code: 1234, approve: true }, "AdminApprove"),
        ] {
            match s.on_frame(&body(PROTOCOL_VERSION, 1, request)) {
                Action::Relay { kind, .. } => assert_eq!(kind, name),
                other => panic!("{other:?}"),
            }
            s.completed();
        }
        assert_eq!(status_name(None), "ok");
        assert_eq!(status_name(Some(&Status::UnsupportedVersion { supported: 1 })), "UnsupportedVersion");
        assert_eq!(status_name(Some(&Status::Busy)), "Busy");
    }

    #[test]
    fn deframe_errors_map_to_statuses() {
        let s = Session::new(1);
        assert_eq!(s.on_deframe_error(FrameError::TooLarge { len: 1 << 30 }), reply(0, Status::FrameTooLarge));
        assert_eq!(s.on_deframe_error(FrameError::Malformed { header: None }), reply(0, Status::BadFrame));
    }
}
