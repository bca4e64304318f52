//! The card link's pending requests, by card-side id (see [`super`]).

use std::collections::VecDeque;
use std::time::Instant;

use gmhsm_proto::{Principal, Status};
use mio::Token;
use zeroize::Zeroizing;

use super::Completion;

pub(super) struct Pending {
    pub(super) token: Token,
    pub(super) client_id: u64,
    pub(super) kind: &'static str,
    pub(super) started: Instant,
    /// For the daemon's own `CloseSession`: the session's principal, to send it again if the
    /// link goes down before the card answers.
    pub(super) closes: Option<Principal>,
    pub(super) revokes: Option<[u8; 32]>,
}

impl Pending {
    pub(super) fn complete(self, result: Result<Zeroizing<Vec<u8>>, Status>) -> Completion {
        let revoked = self.revokes.filter(|_| result.is_ok());
        Completion {
            token: self.token,
            client_id: self.client_id,
            result,
            kind: self.kind,
            started: self.started,
            revoked,
        }
    }
}

/// Requests at the card by card id: slot `i` holds id `first_id + i`, `None` once answered.
/// The front slot, when there is one, is always pending.
pub(super) struct Ring {
    slots: VecDeque<Option<Pending>>,
    first_id: u64,
    pub(super) live: usize,
}

impl Ring {
    pub(super) fn new(first_id: u64) -> Self {
        Ring { slots: VecDeque::new(), first_id, live: 0 }
    }

    /// The id the next [`Ring::push`] gets.
    pub(super) fn next_id(&self) -> u64 {
        self.first_id + self.slots.len() as u64
    }

    pub(super) fn push(&mut self, p: Pending) -> u64 {
        let id = self.next_id();
        self.slots.push_back(Some(p));
        self.live += 1;
        id
    }

    /// Remember what the request pushed last revokes.
    pub(super) fn revokes_last(&mut self, revokes: Option<[u8; 32]>) {
        if let Some(Some(p)) = self.slots.back_mut() {
            p.revokes = revokes;
        }
    }

    pub(super) fn remove(&mut self, id: u64) -> Option<Pending> {
        let i = usize::try_from(id.checked_sub(self.first_id)?).ok()?;
        let p = self.slots.get_mut(i)?.take()?;
        self.live -= 1;
        while matches!(self.slots.front(), Some(None)) {
            self.slots.pop_front();
            self.first_id += 1;
        }
        Some(p)
    }

    /// The oldest pending request and its id.
    pub(super) fn front(&self) -> Option<(u64, &Pending)> {
        self.slots.front().and_then(Option::as_ref).map(|p| (self.first_id, p))
    }

    /// Take every pending request; ids go on from where they were.
    pub(super) fn drain(&mut self) -> impl Iterator<Item = Pending> + '_ {
        self.first_id += self.slots.len() as u64;
        self.live = 0;
        self.slots.drain(..).flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(client_id: u64) -> Pending {
        Pending { token: Token(16), client_id, kind: "Ping", started: Instant::now(), closes: None, revokes: None }
    }

    #[test]
    fn ring_routes_answers_in_any_order_and_stays_short() {
        let mut r = Ring::new(1);
        let ids: Vec<u64> = (0..5).map(|i| r.push(pending(100 + i))).collect();
        assert_eq!(ids, [1, 2, 3, 4, 5]);
        assert_eq!(r.remove(2).map(|p| p.client_id), Some(101), "out of order");
        assert_eq!(r.slots.len(), 5, "a hole behind the front stays");
        assert_eq!(r.remove(2).map(|p| p.client_id), None, "answered once");
        assert_eq!(r.remove(1).map(|p| p.client_id), Some(100));
        assert_eq!(r.front().map(|(id, _)| id), Some(3), "the hole went with the front");
        assert_eq!((r.slots.len(), r.live), (3, 3));
        assert!(r.remove(0).is_none() && r.remove(99).is_none(), "unknown ids");
        assert_eq!(r.drain().map(|p| p.client_id).collect::<Vec<_>>(), [102, 103, 104]);
        assert_eq!((r.live, r.next_id()), (0, 6), "ids are not reused after the link drops");
        assert!(r.front().is_none());
    }
}
