//! The O_DIRECT file flash: NOR semantics, persistence across reopen, refusals, and the
//! firmware's store on it across power cuts (the model test of `firmware/src/store/tests.rs`,
//! with every reboot a close and reopen of the real file).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use gmhsm_board::flash::DirectFlash;
use gmhsm_firmware::store::{MAX_KEY, Store, StoreError};
use gmhsm_platform::{Flash, FlashError, FlashGeometry};

use common::scratch;

const G: FlashGeometry = FlashGeometry { page_size: 4096, page_count: 8, word_size: 4 };

#[test]
fn nor_semantics_persistence_and_refusals() {
    let dir = scratch("nor");
    let path = dir.join("flash.img");
    assert!(DirectFlash::open(&path, G, false).is_err(), "missing file without create");
    let mut f = DirectFlash::open(&path, G, true).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), vec![0xff; G.capacity()], "created erased");
    // A second opener is refused while the first holds the lock.
    let e = DirectFlash::open(&path, G, true).err().expect("second open");
    assert!(e.to_string().contains("locked"), "{e}");
    f.write(8, &[0x0f, 0xf0, 0x00, 0xff]).unwrap();
    assert_eq!(f.write(8, &[0xff; 4]), Err(FlashError::NotErased));
    assert_eq!(f.write(9, &[0; 4]), Err(FlashError::OutOfBounds));
    assert_eq!(f.write(G.capacity(), &[0; 4]), Err(FlashError::OutOfBounds));
    assert_eq!(f.erase(G.page_count), Err(FlashError::OutOfBounds));
    // A write spanning a block (page) boundary.
    let span: Vec<u8> = (0..16).collect();
    f.write(4096 - 8, &span).unwrap();
    drop(f);
    let disk = std::fs::read(&path).unwrap();
    assert_eq!(&disk[8..12], &[0x0f, 0xf0, 0x00, 0xff]);
    assert_eq!(&disk[4096 - 8..4096 + 8], &span[..]);
    let mut f = DirectFlash::open(&path, G, false).unwrap();
    let mut b = [0u8; 4];
    f.read(8, &mut b).unwrap();
    assert_eq!(b, [0x0f, 0xf0, 0x00, 0xff]);
    f.erase(0).unwrap();
    f.read(8, &mut b).unwrap();
    assert_eq!(b, [0xff; 4]);
    f.read(4096, &mut b).unwrap();
    assert_eq!(b, [8, 9, 10, 11], "erase left the next page alone");
    drop(f);
    assert_eq!(&std::fs::read(&path).unwrap()[..4096], &[0xff; 4096][..]);
    // A file of the wrong size is refused, not truncated or grown.
    let other = FlashGeometry { page_count: 16, ..G };
    let e = DirectFlash::open(&path, other, true).err().expect("size mismatch");
    assert!(e.to_string().contains("needs 65536"), "{e}");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), G.capacity() as u64);
    let odd = FlashGeometry { page_size: 512, ..G };
    assert!(DirectFlash::open(&dir.join("odd.img"), odd, true).is_err(), "page size below the O_DIRECT block");
    std::fs::remove_dir_all(&dir).unwrap();
}

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

/// The power-cut model over the real file flash: after `cut_in` more word writes / erases the
/// power goes. The interrupted write keeps the words before the cut and the cut word or not;
/// an interrupted erase leaves the page untouched, erased, or erased with bits of its tail
/// cleared again. After the cut every operation fails with `PowerLoss`.
struct CutFlash {
    inner: DirectFlash,
    cut_in: Option<u64>,
    powered: bool,
    rng: Rng,
}

impl CutFlash {
    fn tick(&mut self) -> bool {
        match &mut self.cut_in {
            Some(0) => {
                self.cut_in = None;
                self.powered = false;
                true
            }
            Some(n) => {
                *n -= 1;
                false
            }
            None => false,
        }
    }
}

impl Flash for CutFlash {
    fn geometry(&self) -> FlashGeometry {
        self.inner.geometry()
    }
    fn read(&self, addr: usize, out: &mut [u8]) -> Result<(), FlashError> {
        if !self.powered {
            return Err(FlashError::PowerLoss);
        }
        self.inner.read(addr, out)
    }
    fn write(&mut self, addr: usize, data: &[u8]) -> Result<(), FlashError> {
        if !self.powered {
            return Err(FlashError::PowerLoss);
        }
        let w = self.geometry().word_size;
        let mut old = vec![0u8; data.len()];
        self.inner.read(addr, &mut old)?;
        if old.iter().zip(data).any(|(o, n)| o & n != *n) || !addr.is_multiple_of(w) || !data.len().is_multiple_of(w) {
            return self.inner.write(addr, data);
        }
        for (i, word) in data.chunks(w).enumerate() {
            if self.tick() {
                if self.rng.below(2) == 1 {
                    self.inner.write(addr + i * w, word)?;
                }
                return Err(FlashError::PowerLoss);
            }
            self.inner.write(addr + i * w, word)?;
        }
        Ok(())
    }
    fn erase(&mut self, page: usize) -> Result<(), FlashError> {
        if !self.powered {
            return Err(FlashError::PowerLoss);
        }
        if !self.tick() {
            return self.inner.erase(page);
        }
        let g = self.geometry();
        match self.rng.below(3) {
            0 => {}
            1 => self.inner.erase(page)?,
            _ => {
                self.inner.erase(page)?;
                let from = self.rng.below(g.page_size as u64 / 4) as usize * 4;
                let junk = self.rng.bytes(g.page_size - from);
                self.inner.write(page * g.page_size + from, &junk)?;
            }
        }
        Err(FlashError::PowerLoss)
    }
}

/// Reboot: close the file and open it again (nothing of the old process's state survives).
fn power_on(path: &Path, seed: u64, cut_in: Option<u64>) -> CutFlash {
    CutFlash { inner: DirectFlash::open(path, G, false).unwrap(), cut_in, powered: true, rng: Rng(seed | 1) }
}

fn open_store(path: &Path, rng: &mut Rng, max_value: usize) -> Store<CutFlash> {
    loop {
        let cut = (rng.below(4) == 0).then(|| rng.below(8));
        match Store::open_with_max_value(power_on(path, rng.next(), cut), max_value) {
            Ok(s) => return s,
            Err(StoreError::Flash(FlashError::PowerLoss)) => continue,
            Err(e) => panic!("open: {e:?}"),
        }
    }
}

fn assert_matches(store: &Store<CutFlash>, model: &BTreeMap<Vec<u8>, Vec<u8>>, keys: &[Vec<u8>]) {
    for k in keys {
        assert_eq!(store.get(k).unwrap().as_ref(), model.get(k), "key {k:02x?}");
    }
    assert_eq!(store.len(), model.len());
}

#[test]
fn store_survives_power_cuts_on_the_file_flash() {
    let dir = scratch("cuts");
    let path = dir.join("flash.img");
    drop(DirectFlash::open(&path, G, true).unwrap());
    let (max_value, cuts) = (600, 60);
    let mut rng = Rng(0x0bad_cafe_f00d);
    let keys: Vec<Vec<u8>> = (0..10).map(|i| vec![i as u8; 1 + (i * 17) % MAX_KEY]).collect();
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut store = open_store(&path, &mut rng, max_value);
    let (mut ops, mut compactions) = (0, 0);
    for _ in 0..cuts {
        drop(store);
        let mut armed = Store::open_with_max_value(power_on(&path, rng.next(), Some(rng.below(400))), max_value)
            .expect("open after a clean reboot");
        assert_matches(&armed, &model, &keys);
        let pending = loop {
            ops += 1;
            let k = keys[rng.below(keys.len() as u64) as usize].clone();
            let old = model.get(&k).cloned();
            if rng.below(4) == 0 {
                match armed.remove(&k) {
                    Ok(existed) => assert_eq!(existed, model.remove(&k).is_some()),
                    Err(StoreError::Flash(FlashError::PowerLoss)) => break (k, old, None),
                    Err(e) => panic!("remove: {e:?}"),
                }
            } else {
                let len = rng.below(max_value as u64 + 1) as usize;
                let v = rng.bytes(len);
                let before = armed.free_bytes();
                match armed.insert(&k, &v) {
                    Ok(()) => {
                        if armed.free_bytes() > before {
                            compactions += 1;
                        }
                        model.insert(k, v);
                    }
                    Err(StoreError::Full) => {}
                    Err(StoreError::Flash(FlashError::PowerLoss)) => break (k, old, Some(v)),
                    Err(e) => panic!("insert: {e:?}"),
                }
            }
        };
        drop(armed);
        store = open_store(&path, &mut rng, max_value);
        let (k, old, new) = pending;
        let got = store.get(&k).unwrap();
        assert!(got == old || got == new, "interrupted op on {k:02x?} left {got:02x?}");
        match got {
            Some(v) => model.insert(k, v),
            None => model.remove(&k),
        };
        assert_matches(&store, &model, &keys);
    }
    eprintln!("{cuts} power cuts over {ops} operations on {}, {compactions} compactions seen", path.display());
    assert!(ops > cuts * 3, "too few operations between cuts");
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}
