//! The MTD flash backend: ioctl numbers and structure layouts as <mtd/mtd-abi.h> has them,
//! the geometry checks, and the device itself where the machine has one.

use std::path::Path;

use gmhsm_board::flash::MtdFlash;
use gmhsm_board::flash::mtd::{EraseInfoUser, MTD_NORFLASH, MTD_RAM, MTD_WRITEABLE, MtdInfoUser, geometry_of, ioctl};
use gmhsm_platform::{Flash, FlashError, FlashGeometry};

#[test]
fn ioctl_numbers_match_the_kernel_header() {
    // _IOR('M', 1, struct mtd_info_user) and _IOW('M', 2, struct erase_info_user) on Linux.
    assert_eq!(size_of::<MtdInfoUser>(), 32);
    assert_eq!(size_of::<EraseInfoUser>(), 8);
    assert_eq!(ioctl::MEMGETINFO, 0x8020_4d01);
    assert_eq!(ioctl::MEMERASE, 0x4008_4d02);
}

fn info(kind: u8, flags: u32, size: u32, erasesize: u32, writesize: u32) -> MtdInfoUser {
    MtdInfoUser { kind, flags, size, erasesize, writesize, ..Default::default() }
}

#[test]
fn geometry_from_memgetinfo() {
    let nor = info(MTD_NORFLASH, MTD_WRITEABLE, 1 << 20, 64 << 10, 1);
    assert_eq!(geometry_of(&nor, 4), Ok(FlashGeometry { page_size: 64 << 10, page_count: 16, word_size: 4 }));
    assert!(geometry_of(&info(MTD_RAM, MTD_WRITEABLE, 1 << 16, 4096, 1), 8).is_ok());
    assert!(geometry_of(&info(4, MTD_WRITEABLE, 1 << 20, 128 << 10, 2048), 4).unwrap_err().contains("NAND"));
    assert!(geometry_of(&info(MTD_NORFLASH, 0, 1 << 20, 64 << 10, 1), 4).unwrap_err().contains("read-only"));
    assert!(
        geometry_of(&info(MTD_NORFLASH, MTD_WRITEABLE, 3 << 16, 64 << 10, 1), 4).unwrap_err().contains("at least 4")
    );
    assert!(
        geometry_of(&info(MTD_NORFLASH, MTD_WRITEABLE, 1 << 20, 64 << 10, 8), 4).unwrap_err().contains("write size 8")
    );
}

#[test]
fn on_a_real_mtd_device() {
    let dev = (0..8).map(|i| format!("/dev/mtd{i}")).find(|p| Path::new(p).exists());
    let Some(dev) = dev else {
        eprintln!("NOT TESTED: MTD flash on a device (no /dev/mtd*; `modprobe mtdram` is not possible here)");
        assert!(std::env::var_os("GMHSM_REQUIRE_MTD").is_none(), "GMHSM_REQUIRE_MTD is set but there is no /dev/mtd*");
        return;
    };
    // Only run against a device the test may destroy: mtdram (name "mtdram test device").
    let name = std::fs::read_to_string(format!("/sys/class/mtd/{}/name", &dev[5..])).unwrap_or_default();
    if name.trim() != "mtdram test device" {
        eprintln!("NOT TESTED: {dev} is {:?}, not mtdram; not erasing it", name.trim());
        return;
    }
    let mut f = MtdFlash::open(Path::new(&dev), 4).unwrap();
    let g = f.geometry();
    f.erase(1).unwrap();
    f.write(g.page_size + 8, &[0x0f, 0xf0, 0x00, 0xff]).unwrap();
    assert_eq!(f.write(g.page_size + 8, &[0xff; 4]), Err(FlashError::NotErased));
    drop(f);
    let mut f = MtdFlash::open(Path::new(&dev), 4).unwrap();
    let mut b = [0u8; 4];
    f.read(g.page_size + 8, &mut b).unwrap();
    assert_eq!(b, [0x0f, 0xf0, 0x00, 0xff]);
    f.erase(1).unwrap();
    drop(f);
    let f = MtdFlash::open(Path::new(&dev), 4).unwrap();
    f.read(g.page_size + 8, &mut b).unwrap();
    assert_eq!(b, [0xff; 4]);
}

#[test]
fn a_missing_device_is_a_clear_error() {
    let e = MtdFlash::open(Path::new("/dev/mtd-gmhsm-absent"), 4).err().expect("no such device");
    assert!(e.to_string().starts_with("MTD flash /dev/mtd-gmhsm-absent: "), "{e}");
    // Not an MTD: MEMGETINFO fails with a clear error.
    let e = MtdFlash::open(Path::new("/dev/null"), 4).err().expect("not an MTD");
    assert!(e.to_string().starts_with("MTD flash /dev/null: "), "{e}");
}
