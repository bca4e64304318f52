//! Store tests: a model with power cuts at random points, compaction, capacity, and the cost
//! of operations counted in flash words.

extern crate std;

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use gmhsm_platform::{Flash, FlashError, FlashGeometry};

use super::{MAX_KEY, MAX_VALUE, Store, StoreError};
use gmhsm_platform::sim::{OpCounts, RamFlash};

/// xorshift64*: deterministic test randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A handle on a shared RAM flash, so a test keeps the flash when `open` fails.
#[derive(Clone)]
struct Shared(Rc<RefCell<RamFlash>>);

impl Shared {
    fn new(g: FlashGeometry, seed: u64) -> Self {
        Shared(Rc::new(RefCell::new(RamFlash::new(g, seed))))
    }
    fn counts(&self) -> OpCounts {
        self.0.borrow().counts()
    }
}

impl Flash for Shared {
    fn geometry(&self) -> FlashGeometry {
        self.0.borrow().geometry()
    }
    fn read(&self, addr: usize, out: &mut [u8]) -> Result<(), FlashError> {
        self.0.borrow().read(addr, out)
    }
    fn write(&mut self, addr: usize, data: &[u8]) -> Result<(), FlashError> {
        self.0.borrow_mut().write(addr, data)
    }
    fn erase(&mut self, page: usize) -> Result<(), FlashError> {
        self.0.borrow_mut().erase(page)
    }
}

fn geometry(page_size: usize, page_count: usize, word_size: usize) -> FlashGeometry {
    FlashGeometry { page_size, page_count, word_size }
}

/// Check every key of `keys` against the model, and the key set.
fn assert_matches(store: &Store<Shared>, model: &BTreeMap<Vec<u8>, Vec<u8>>, keys: &[Vec<u8>]) {
    for k in keys {
        assert_eq!(store.get(k).unwrap().as_ref(), model.get(k), "key {k:02x?}");
    }
    assert_eq!(store.len(), model.len());
    assert!(store.keys().eq(model.keys().map(Vec::as_slice)));
}

/// Random inserts, replaces and removes over a small keyspace with power cut at random word
/// writes / erases (also during the repair at open); after each reboot the store must equal
/// the model, the interrupted operation showing wholly or not at all.
fn model_with_cuts(g: FlashGeometry, max_value: usize, key_count: usize, seed: u64, cuts: usize) {
    let mut rng = Rng(seed);
    let keys: Vec<Vec<u8>> = (0..key_count).map(|i| vec![i as u8; 1 + (i * 17) % MAX_KEY]).collect();
    let flash = Shared::new(g, seed);
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut store = Store::open_with_max_value(flash.clone(), max_value).unwrap();
    let (mut fulls, mut compactions_cut, mut ops) = (0, 0, 0);
    for _ in 0..cuts {
        flash.0.borrow_mut().cut_after(rng.below(300));
        let pending = loop {
            ops += 1;
            let k = keys[rng.below(keys.len() as u64) as usize].clone();
            let old = model.get(&k).cloned();
            if rng.below(4) == 0 {
                match store.remove(&k) {
                    Ok(existed) => assert_eq!(existed, model.remove(&k).is_some()),
                    Err(StoreError::Flash(FlashError::PowerLoss)) => break (k, old, None),
                    Err(e) => panic!("remove: {e:?}"),
                }
            } else {
                let len = match rng.below(4) {
                    0 | 1 if key_count > 12 => rng.below(max_value as u64 + 1),
                    0 => rng.below(max_value as u64 + 1),
                    _ => rng.below(48),
                } as usize;
                let v = rng.bytes(len);
                let fits = store.live + store.log.lay.record_len(k.len(), len) <= store.limits.budget;
                let erases = flash.counts().erases;
                match store.insert(&k, &v) {
                    Ok(()) => {
                        model.insert(k, v);
                    }
                    Err(StoreError::Full) => {
                        assert!(!fits, "Full although within budget");
                        fulls += 1;
                    }
                    Err(StoreError::Flash(FlashError::PowerLoss)) => {
                        if flash.counts().erases != erases {
                            compactions_cut += 1;
                        }
                        break (k, old, Some(v));
                    }
                    Err(e) => panic!("insert: {e:?}"),
                }
            }
        };
        drop(store);
        // Reboot; cut again during the repair now and then.
        store = loop {
            flash.0.borrow_mut().reboot();
            if rng.below(4) == 0 {
                flash.0.borrow_mut().cut_after(rng.below(8));
            }
            match Store::open_with_max_value(flash.clone(), max_value) {
                Ok(s) => break s,
                Err(StoreError::Flash(FlashError::PowerLoss)) => continue,
                Err(e) => panic!("open: {e:?}"),
            }
        };
        flash.0.borrow_mut().reboot();
        let (k, old, new) = pending;
        let got = store.get(&k).unwrap();
        assert!(got == old || got == new, "interrupted op on {k:02x?} left {got:02x?}");
        match got {
            Some(v) => model.insert(k, v),
            None => model.remove(&k),
        };
        assert_matches(&store, &model, &keys);
    }
    std::println!("{g:?}: {cuts} cuts, {ops} ops, {fulls} Full, {compactions_cut} cuts in compaction");
    if key_count > 12 {
        assert!(fulls > 0, "the store never filled up");
    }
    assert!(compactions_cut > cuts / 50, "too few cuts hit a compaction");
}

#[test]
fn store_model_power_cuts_word4() {
    model_with_cuts(geometry(512, 16, 4), 256, 12, 0x1234_5678, 6000);
}

#[test]
fn store_model_power_cuts_word8() {
    model_with_cuts(geometry(512, 16, 8), 256, 12, 0x9abc_def0, 6000);
}

#[test]
fn store_model_power_cuts_big_records() {
    // Values larger than a page: records span several pages.
    model_with_cuts(geometry(256, 64, 4), 700, 12, 0x5555_aaaa, 3000);
}

#[test]
fn store_model_power_cuts_near_full() {
    // Many keys, large values: inserts often hit Full, compaction runs with little garbage.
    model_with_cuts(geometry(512, 16, 4), 256, 40, 0x0bad_cafe, 4000);
}

#[test]
fn store_basic_operations_survive_reopen() {
    let flash = Shared::new(geometry(4096, 16, 4), 1);
    let mut s = Store::open(flash.clone()).unwrap();
    assert!(s.is_empty());
    s.insert(b"a", b"one").unwrap();
    s.insert(b"b", b"").unwrap();
    s.insert(b"a", b"two").unwrap();
    assert_eq!(s.get(b"a").unwrap().as_deref(), Some(&b"two"[..]));
    assert!(s.remove(b"b").unwrap());
    assert!(!s.remove(b"b").unwrap());
    assert!(!s.contains(b"b"));
    let big = vec![0x5a; MAX_VALUE];
    s.insert(b"big", &big).unwrap();
    assert_eq!(s.insert(b"x", &vec![0; MAX_VALUE + 1]), Err(StoreError::TooLarge));
    assert_eq!(s.insert(b"", b"v"), Err(StoreError::InvalidKey));
    assert_eq!(s.insert(&[1; MAX_KEY + 1], b"v"), Err(StoreError::InvalidKey));
    s.insert(&[7; MAX_KEY], b"long key").unwrap();
    drop(s);
    let s = Store::open(flash).unwrap();
    assert_eq!(s.len(), 3);
    assert_eq!(s.get(b"a").unwrap().as_deref(), Some(&b"two"[..]));
    assert_eq!(s.get(b"b").unwrap(), None);
    assert_eq!(s.get(b"big").unwrap(), Some(big));
    assert_eq!(s.get(&[7; MAX_KEY]).unwrap().as_deref(), Some(&b"long key"[..]));
}

#[test]
fn store_fill_until_full_then_delete_and_insert_again() {
    for word in [4, 8] {
        let flash = Shared::new(geometry(1024, 32, word), 2);
        let mut s = Store::open(flash.clone()).unwrap();
        let mut model = BTreeMap::new();
        let mut next = 0;
        let mut fill = |s: &mut Store<Shared>, model: &mut BTreeMap<Vec<u8>, Vec<u8>>| {
            let mut added = 0;
            loop {
                let (k, v) = (format!("key-{next:04}").into_bytes(), vec![next as u8; 100]);
                match s.insert(&k, &v) {
                    Ok(()) => {
                        model.insert(k, v);
                        added += 1;
                        next += 1;
                    }
                    Err(StoreError::Full) => return added,
                    Err(e) => panic!("{e:?}"),
                }
            }
        };
        let n = fill(&mut s, &mut model);
        assert!(n > 20, "only {n} fit");
        for round in 0..6 {
            let doomed: Vec<Vec<u8>> = model.keys().step_by(2).cloned().collect();
            for k in &doomed {
                assert!(s.remove(k).unwrap());
                model.remove(k);
            }
            let added = fill(&mut s, &mut model);
            assert!(added + 1 >= doomed.len(), "round {round}: {added} refilled after freeing {}", doomed.len());
        }
        assert!(flash.counts().erases > 0, "compaction ran");
        drop(s);
        let s = Store::open(flash).unwrap();
        let keys: Vec<Vec<u8>> = (0..next).map(|i| format!("key-{i:04}").into_bytes()).collect();
        assert_matches(&s, &model, &keys);
    }
}

#[test]
fn store_capacity_6000_values_of_120_bytes_in_1_mib() {
    for word in [4, 8] {
        let flash = Shared::new(geometry(4096, 256, word), 3);
        let mut s = Store::open(flash.clone()).unwrap();
        for i in 0..6000u32 {
            s.insert(format!("key-{i:05}").as_bytes(), &[i as u8; 120]).unwrap();
        }
        let left = s.free_bytes();
        drop(s);
        let s = Store::open(flash).unwrap();
        assert_eq!(s.len(), 6000);
        assert_eq!(s.get(b"key-04321").unwrap(), Some(vec![4321u32 as u8; 120]));
        std::println!("word {word}: 6000 x 120 B stored, about {left} bytes free");
    }
}

#[test]
fn store_operation_cost_does_not_grow_with_key_count() {
    let cost = |n: usize| {
        let flash = Shared::new(geometry(4096, 256, 4), 4);
        let mut s = Store::open(flash.clone()).unwrap();
        for i in 0..n {
            s.insert(format!("key-{i:05}").as_bytes(), &[1; 64]).unwrap();
        }
        let mut ops = |f: &mut dyn FnMut(&mut Store<Shared>)| -> OpCounts {
            flash.0.borrow().reset_counts();
            f(&mut s);
            flash.counts()
        };
        let get = ops(&mut |s| {
            s.get(b"key-00042").unwrap().unwrap();
        });
        let miss = ops(&mut |s| assert_eq!(s.get(b"absent").unwrap(), None));
        let insert = ops(&mut |s| s.insert(b"probe", &[2; 64]).unwrap());
        let replace = ops(&mut |s| s.insert(b"key-00042", &[3; 64]).unwrap());
        let remove = ops(&mut |s| assert!(s.remove(b"key-00007").unwrap()));
        (get, miss, insert, replace, remove)
    };
    let small = cost(100);
    let large = cost(5000);
    // 4-byte words: a record with a 9-byte key and a 64-byte value is 1 + 19 + 1 words.
    let words = OpCounts { read_words: 21, ..OpCounts::default() };
    assert_eq!(small.0, words);
    assert_eq!(large.0, words);
    assert_eq!((small.1, large.1), (OpCounts::default(), OpCounts::default()));
    for (s, l) in [(small.2, large.2), (small.3, large.3), (small.4, large.4)] {
        // One record, plus a page header (5 words) if the record opened a page.
        assert_eq!((s.read_words, l.read_words, s.erases, l.erases), (0, 0, 0, 0));
        assert!(s.written_words <= 20 + 5 && l.written_words <= 20 + 5, "{s:?} {l:?}");
    }
}

#[test]
fn store_compaction_cost_is_bounded_per_insert() {
    // Churn at a steady fill: words written per insert must not depend on the key count,
    // only on the fill fraction (here about half), compaction included.
    let churn = |n: usize, page_count: usize| -> f64 {
        let flash = Shared::new(geometry(4096, page_count, 4), 5);
        let mut s = Store::open_with_max_value(flash.clone(), 128).unwrap();
        for i in 0..n {
            s.insert(format!("key-{i:05}").as_bytes(), &[1; 64]).unwrap();
        }
        flash.0.borrow().reset_counts();
        let rounds = 4 * n;
        for r in 0..rounds {
            s.insert(format!("key-{:05}", (r * 7919) % n).as_bytes(), &[r as u8; 64]).unwrap();
        }
        assert!(flash.counts().erases > 0);
        flash.counts().written_words as f64 / rounds as f64
    };
    // 96 bytes per record: the live data fills about half of what the reserve leaves.
    let small = churn(100, 8);
    let large = churn(5000, 240);
    std::println!("words written per insert: {small:.1} at 100 keys, {large:.1} at 5000 keys");
    assert!(large < 3.0 * 24.0 && small < 3.0 * 24.0);
}

#[test]
fn store_open_never_panics_on_garbage() {
    for seed in 1..40u64 {
        let mut rng = Rng(seed);
        let g = geometry(512, 16, 4 << (seed % 2));
        let flash = Shared::new(g, seed);
        // Start from a real store, then spray random bytes over random places.
        let mut s = Store::open_with_max_value(flash.clone(), 200).unwrap();
        for i in 0..40u8 {
            let n = rng.below(200) as usize;
            let _ = s.insert(&[i % 7 + 1; 3], &rng.bytes(n));
        }
        drop(s);
        {
            let mut f = flash.0.borrow_mut();
            let mut image = f.image().to_vec();
            for _ in 0..rng.below(20) + 1 {
                let at = rng.below(image.len() as u64) as usize;
                let n = (rng.below(64) as usize).min(image.len() - at);
                image[at..at + n].copy_from_slice(&rng.bytes(n));
            }
            *f = RamFlash::new(g, seed);
            for (page, chunk) in image.chunks(512).enumerate() {
                f.erase(page).unwrap();
                let _ = f.write(page * 512, chunk);
            }
        }
        match Store::open_with_max_value(flash.clone(), 200) {
            Ok(mut s) => {
                for k in s.keys().map(<[u8]>::to_vec).collect::<Vec<_>>() {
                    let _ = s.get(&k);
                }
                let _ = s.insert(b"new", b"value");
            }
            Err(e) => assert_eq!(e, StoreError::Corrupt),
        }
    }
    // Wholly random flash.
    let mut rng = Rng(99);
    let flash = Shared::new(geometry(512, 8, 4), 99);
    for page in 0..8 {
        flash.clone().write(page * 512, &rng.bytes(512)).ok();
    }
    let mut s = Store::open_with_max_value(flash, 200).unwrap();
    assert!(s.is_empty());
    s.insert(b"k", b"v").unwrap();
}

#[test]
fn store_detects_a_flipped_bit_in_a_committed_record() {
    let g = geometry(512, 8, 4);
    let flash = Shared::new(g, 7);
    let mut s = Store::open_with_max_value(flash.clone(), 200).unwrap();
    s.insert(b"pin-retries", &[3]).unwrap();
    s.insert(b"pin-retries", &[2]).unwrap();
    let at = s.log.lay.addr(s.index[&b"pin-retries"[..]].at) + 4 + 11;
    drop(s);
    // Clearing a bit is something a flash write can do: the value 2 becomes 0.
    let mut byte = [0u8; 4];
    flash.read(at & !3, &mut byte).unwrap();
    byte[at & 3] &= !2;
    flash.0.borrow_mut().write(at & !3, &byte).unwrap();
    assert_eq!(Store::open_with_max_value(flash, 200).err(), Some(StoreError::Corrupt));
}
