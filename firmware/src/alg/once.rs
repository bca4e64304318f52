//! Precomputed secrets handed out at most once — the card's pools of signing nonces (SM2,
//! ECDSA P-256) and of SM2 key pairs — and the secret scalars of a batch on its way to being
//! computed. One implementation of the invariants they share:
//!
//! * a pool's slots are allocated once, at its capacity, and never reallocated, so no copy of
//!   a secret is left behind in freed memory;
//! * taking a secret moves it out of its slot and leaves the zero value (`T::default()`)
//!   behind; batches moving into a pool are emptied the same way, slot by slot;
//! * clearing or dropping a pool zeroizes every unused secret, and dropping a batch of drawn
//!   scalars zeroizes them.

use alloc::vec::Vec;
use zeroize::Zeroize;

/// At most `capacity` secrets, each handed out at most once.
pub struct OncePool<T: Default + Zeroize> {
    /// `slots[..len]` hold unused secrets; the rest are zero.
    slots: Vec<T>,
    len: usize,
}

impl<T: Default + Zeroize> core::fmt::Debug for OncePool<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "OncePool {{ len: {}, capacity: {} }}", self.len, self.slots.len())
    }
}

impl<T: Default + Zeroize> OncePool<T> {
    pub fn new(capacity: usize) -> Self {
        let mut slots = Vec::with_capacity(capacity);
        slots.resize_with(capacity, T::default);
        OncePool { slots, len: 0 }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Free slots.
    pub fn room(&self) -> usize {
        self.capacity() - self.len
    }

    /// Move secrets out of `batch` into the pool, leaving zero values behind; returns how
    /// many moved (those that do not fit stay in the batch, for its owner to drop).
    pub fn push(&mut self, batch: &mut [T]) -> usize {
        let n = batch.len().min(self.room());
        for (slot, secret) in self.slots[self.len..self.len + n].iter_mut().zip(batch.iter_mut()) {
            *slot = core::mem::take(secret);
        }
        self.len += n;
        n
    }

    /// Take one unused secret, or `None` if the pool is empty. Its slot is zeroed.
    pub fn take(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        Some(core::mem::take(&mut self.slots[self.len]))
    }

    /// Zeroize and drop every unused secret.
    pub fn clear(&mut self) {
        for slot in &mut self.slots[..self.len] {
            slot.zeroize();
        }
        self.len = 0;
    }

    /// The slots, for tests that check zeroization.
    #[cfg(test)]
    pub(crate) fn slots(&self) -> &[T] {
        &self.slots
    }
}

impl<T: Default + Zeroize> Drop for OncePool<T> {
    fn drop(&mut self) {
        self.clear();
    }
}

/// A batch of secrets (drawn scalars, computed nonces or pairs), zeroized on drop; `Debug`
/// shows only the count.
pub struct Secrets<S: Zeroize>(pub Vec<S>);

impl<S: Zeroize> core::fmt::Debug for Secrets<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Secrets {{ n: {} }}", self.0.len())
    }
}

impl<S: Zeroize> Drop for Secrets<S> {
    fn drop(&mut self) {
        self.0.iter_mut().for_each(Zeroize::zeroize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, Zeroize, PartialEq, Debug)]
    struct S(u64);

    #[test]
    fn secrets_are_moved_once_and_zeroed_behind() {
        let mut pool = OncePool::<S>::new(3);
        let mut batch = alloc::vec![S(1), S(2), S(3), S(4)];
        assert_eq!(pool.push(&mut batch), 3);
        assert_eq!(batch, [S(0), S(0), S(0), S(4)], "moved secrets leave zeros; the extra stays");
        assert_eq!(pool.take(), Some(S(3)));
        assert_eq!(pool.slots()[2], S(0), "a taken slot is zeroed");
        pool.clear();
        assert!(pool.is_empty() && pool.slots().iter().all(|s| *s == S(0)));
        assert_eq!(pool.take(), None);
        assert_eq!(pool.slots.capacity(), 3, "slots are never reallocated");
    }
}
