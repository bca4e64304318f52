//! The evdev keypad against recorded event streams (bytes of `struct input_event` through a
//! pipe), and through /dev/uinput where the machine has it.

use std::io::Write;
use std::time::{Duration, Instant};

use gmhsm_board::keypad::{EVENT_SIZE, EvdevKeypad, decode, key_of};
use gmhsm_platform::{Key, Keypad, KeypadError};

/// One `struct input_event`, as the kernel writes it.
fn event(kind: u16, code: u16, value: i32) -> Vec<u8> {
    let mut e = vec![0u8; EVENT_SIZE];
    e[..8].copy_from_slice(&1_765_000_000i64.to_ne_bytes()[..8]);
    let t = EVENT_SIZE - 8;
    e[t..t + 2].copy_from_slice(&kind.to_ne_bytes());
    e[t + 2..t + 4].copy_from_slice(&code.to_ne_bytes());
    e[t + 4..].copy_from_slice(&value.to_ne_bytes());
    e
}

/// What a USB numeric keypad sends for one press and release of `code`: MSC_SCAN, key down,
/// SYN_REPORT, MSC_SCAN, key up, SYN_REPORT.
fn tap(code: u16) -> Vec<u8> {
    [event(4, 4, 0x7005a), event(1, code, 1), event(0, 0, 0), event(4, 4, 0x7005a), event(1, code, 0), event(0, 0, 0)]
        .concat()
}

#[test]
fn recorded_stream_maps_presses_only() {
    // "1 2 3 4 Enter" on the numeric keypad, a held 5 (autorepeat), Esc, Menu, arrows.
    let mut stream = Vec::new();
    for code in [79, 80, 81, 75, 96] {
        stream.extend(tap(code));
    }
    stream.extend(event(1, 76, 1));
    stream.extend(event(1, 76, 2));
    stream.extend(event(1, 76, 2));
    stream.extend(event(1, 76, 0));
    for code in [1, 139, 103, 108, 30 /* KEY_A: not a panel key */, 11] {
        stream.extend(tap(code));
    }
    let (reader, mut writer) = std::io::pipe().unwrap();
    let mut keypad = EvdevKeypad::new(reader);
    assert_eq!(keypad.read_key(0), Ok(None), "nothing yet");
    // Delivered in odd-sized pieces: events split across reads.
    let feeder = std::thread::spawn(move || {
        for chunk in stream.chunks(EVENT_SIZE * 2 + 5) {
            writer.write_all(chunk).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        writer
    });
    let mut got = Vec::new();
    while got.len() < 11 {
        match keypad.read_key(2000) {
            Ok(Some(k)) => got.push(k),
            other => panic!("after {got:?}: {other:?}"),
        }
    }
    let want = [1, 2, 3, 4].map(Key::Digit).into_iter().chain([
        Key::Ok,
        Key::Digit(5),
        Key::Cancel,
        Key::Menu,
        Key::Up,
        Key::Down,
        Key::Digit(0),
    ]);
    assert_eq!(got, want.collect::<Vec<_>>());
    let writer = feeder.join().unwrap();
    let start = Instant::now();
    assert_eq!(keypad.read_key(50), Ok(None), "timeout with nothing pending");
    assert!(start.elapsed() >= Duration::from_millis(45));
    drop(writer);
    assert_eq!(keypad.read_key(1000), Err(KeypadError::Unavailable), "device gone");
}

#[test]
fn key_map_covers_every_panel_key() {
    for d in 0..=9u8 {
        let kp = [82, 79, 80, 81, 75, 76, 77, 71, 72, 73][d as usize];
        let row = if d == 0 { 11 } else { 1 + d as u16 };
        assert_eq!(key_of(kp), Some(Key::Digit(d)), "KEY_KP{d}");
        assert_eq!(key_of(row), Some(Key::Digit(d)), "KEY_{d}");
        assert_eq!(key_of(0x200 + d as u16), Some(Key::Digit(d)), "KEY_NUMERIC_{d}");
    }
    assert_eq!(key_of(28), Some(Key::Ok));
    assert_eq!(key_of(14), Some(Key::Cancel));
    assert_eq!(key_of(55), Some(Key::Cancel));
    assert_eq!(key_of(98), Some(Key::Menu));
    assert_eq!(key_of(74), Some(Key::Up));
    assert_eq!(key_of(78), Some(Key::Down));
    assert_eq!(key_of(30), None);
    let e: [u8; EVENT_SIZE] = event(2, 28, 1).try_into().unwrap();
    assert_eq!(decode(&e), None, "EV_REL with the Enter code is not a key");
}

#[test]
fn through_uinput() {
    if !std::path::Path::new("/dev/uinput").exists() {
        eprintln!("NOT TESTED: keypad through /dev/uinput (no /dev/uinput here, and no uinput module to load)");
        assert!(
            std::env::var_os("GMHSM_REQUIRE_UINPUT").is_none(),
            "GMHSM_REQUIRE_UINPUT is set but /dev/uinput is missing"
        );
        return;
    }
    use evdev::uinput::VirtualDevice;
    use evdev::{AttributeSet, EventType, InputEvent, KeyCode};
    let codes = [KeyCode::KEY_KP4, KeyCode::KEY_KP2, KeyCode::KEY_KPENTER, KeyCode::KEY_ESC];
    let keys: AttributeSet<KeyCode> = codes.iter().copied().collect();
    let mut dev =
        VirtualDevice::builder().unwrap().name("gmhsm-test-keypad").with_keys(&keys).unwrap().build().unwrap();
    let node = dev
        .enumerate_dev_nodes_blocking()
        .unwrap()
        .flatten()
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("event")))
        .expect("the virtual keypad's /dev/input/event node");
    let mut keypad = EvdevKeypad::open(&node).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    for code in codes {
        dev.emit(&[InputEvent::new(EventType::KEY.0, code.code(), 1)]).unwrap();
        dev.emit(&[InputEvent::new(EventType::KEY.0, code.code(), 0)]).unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 4 {
        got.push(keypad.read_key(2000).unwrap().expect("a key from uinput"));
    }
    assert_eq!(got, [Key::Digit(4), Key::Digit(2), Key::Ok, Key::Cancel]);
}
