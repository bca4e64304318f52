//! The clock: CLOCK_MONOTONIC for the card, wall time from the RTC's sysfs directory.

mod common;

use std::path::Path;
use std::time::Duration;

use gmhsm_board::clock::LinuxClock;
use gmhsm_platform::Clock;

#[test]
fn monotonic_time_moves_forward_from_zero() {
    let clock = LinuxClock::monotonic_only(Path::new("/nonexistent"));
    let a = clock.now_ms();
    assert!(a < 1000, "starts near zero: {a}");
    std::thread::sleep(Duration::from_millis(30));
    let b = clock.now_ms();
    assert!((25..5000).contains(&(b - a)), "{a} then {b}");
    assert!(clock.now_ms() >= b);
}

#[test]
fn wall_time_from_the_rtc() {
    let dir = common::scratch("rtc");
    std::fs::write(dir.join("since_epoch"), "1765100000\n").unwrap();
    assert_eq!(LinuxClock::open(&dir).unwrap().wall_secs().unwrap(), 1_765_100_000);
    std::fs::write(dir.join("since_epoch"), "soon\n").unwrap();
    let e = LinuxClock::monotonic_only(&dir).wall_secs().err().unwrap().to_string();
    assert!(e.contains("not a number of seconds: \"soon\""), "{e}");
    let e = LinuxClock::open(Path::new("/sys/class/rtc/gmhsm-absent")).err().unwrap().to_string();
    assert!(e.starts_with("RTC /sys/class/rtc/gmhsm-absent/since_epoch: "), "{e}");
    match LinuxClock::open(Path::new("/sys/class/rtc/rtc0")) {
        Ok(rtc) => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
            assert!(rtc.wall_secs().unwrap().abs_diff(now) < 24 * 3600, "RTC far from the system clock");
        }
        Err(_) => eprintln!("NOT TESTED: a real RTC (no /sys/class/rtc/rtc0 here)"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
