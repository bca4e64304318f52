//! The virtual admin card through the REAL PC/SC stack: pcscd + the vpcd driver, our
//! `PcscReader`, and the `AdminCard` client — the production path from daemon to card.
//!
//! Needs the Debian packages pcscd, vsmartcard-vpcd (and libpcsclite-dev to build). If they
//! are missing this test FAILS with a message naming them; it never skips. scripts/test.sh
//! installs them and starts pcscd; run alone, the test starts `pcscd -f -d -a` itself.

use std::time::Duration;

use gmhsm_icc::spec::purpose;
use gmhsm_icc::{AdminCard, AdminCardError as E, CardState, PcscReader, Pin, PinStatus, Role};
use gmhsm_platform::{CardError, CardSlot, CardTransport, SlotEvent, SlotState};
use gmhsm_sim::admin_card::{SimDomainKey, VirtualCard, verify_card_signature};
use gmhsm_sim::vpcd::{Pcscd, VPCD_READER, VpcdCard};

fn pin(s: &str) -> Pin {
    Pin::new(s.as_bytes()).unwrap()
}

fn wait_for(reader: &mut PcscReader, want: SlotEvent) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::time::Instant::now() < deadline {
        if reader.wait_event(1_000).expect("reader events") == Some(want) {
            return;
        }
    }
    panic!("the reader did not report {want:?} within 15 s");
}

#[test]
fn admin_card_through_pcscd_and_vpcd() {
    let pcscd = Pcscd::ensure(Duration::from_secs(20)).unwrap_or_else(|e| panic!("{e}"));
    let name = pcscd.wait_for_reader(VPCD_READER, Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
    let mut reader = PcscReader::open(&name).expect("open the vpcd reader");
    assert_eq!(reader.state().unwrap(), SlotState::Empty, "another card is in {name}");

    let dir = std::env::temp_dir().join(format!("gmhsm-pcsc-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let image = dir.join("admin-card-1.img");
    let _ = std::fs::remove_file(&image);

    // Insert the card: pcscd sees it, powers it and reads the ATR.
    let inserted = VpcdCard::insert_default(VirtualCard::open(&image).unwrap()).expect("connect to vpcd");
    wait_for(&mut reader, SlotEvent::Inserted);
    assert_eq!(reader.connect().unwrap(), gmhsm_sim::admin_card::ATR);

    let mut card = AdminCard::new(reader);
    card.select().unwrap();
    assert_eq!(card.info().unwrap().state, CardState::Blank);
    card.personalize(b"GM-ADM-0001", Role::Administrator, 3).unwrap();
    assert_eq!(card.personalize(b"again", Role::Auditor, 3).unwrap_err(), E::WrongState);
    card.set_initial_pin(&pin("135790")).unwrap();
    card.verify_pin(&pin("135790")).unwrap();
    let card_key = card.generate_key().unwrap();
    let info = card.info().unwrap();
    assert_eq!(info.serial, b"GM-ADM-0001");
    assert_eq!(
        (info.role, info.state, info.public_key),
        (Some(Role::Administrator), CardState::Operational, Some(card_key))
    );

    // The crypto card's side, simulated: its domain key and its login nonce.
    let domain = SimDomainKey::generate().unwrap();
    card.bind_domain(&domain.public_point(), None).unwrap();
    let nonce = [0xA5u8; 32];
    let sig = card.authenticate(&nonce).unwrap();
    assert!(verify_card_signature(&card_key, b"GM-ADM-0001", &nonce, &sig), "card signature must verify");
    assert!(!verify_card_signature(&card_key, b"GM-ADM-0001", &[0x5A; 32], &sig));

    // A share larger than a short APDU, encrypted to the crypto card: stored and released.
    let share = [0x3Cu8; 300];
    let blob = domain.encrypt_share(&share).unwrap();
    assert!(blob.len() > 255);
    let ch = card.get_challenge().unwrap();
    let auth = domain.authorize(purpose::PUT_SHARE, b"GM-ADM-0001", &ch, &blob).unwrap();
    card.put_share(Some(&blob), &auth).unwrap();
    assert_eq!(&card.get_share().unwrap()[..], &blob[..]);
    assert_eq!(&domain.decrypt_share(&card.get_share().unwrap()).unwrap()[..], &share[..]);

    // Wrong PINs count down on the card and lock it.
    card.logout().unwrap();
    assert_eq!(card.get_share().unwrap_err(), E::PinRequired);
    assert_eq!(card.verify_pin(&pin("000000")).unwrap_err(), E::WrongPin { retries_left: 2 });
    assert_eq!(card.verify_pin(&pin("000000")).unwrap_err(), E::WrongPin { retries_left: 1 });
    assert_eq!(card.verify_pin(&pin("000000")).unwrap_err(), E::WrongPin { retries_left: 0 });
    assert_eq!(card.verify_pin(&pin("135790")).unwrap_err(), E::Blocked, "6983 once locked");
    assert_eq!(card.pin_status().unwrap(), PinStatus::Blocked);
    assert_eq!(card.info().unwrap().state, CardState::Locked);
    assert_eq!(card.authenticate(&nonce).unwrap_err(), E::PinRequired);

    // Remove the card: the reader reports it and the transport fails.
    let mut reader = card.into_transport();
    let back = inserted.remove().expect("card thread");
    wait_for(&mut reader, SlotEvent::Removed);
    let mut r = Vec::new();
    let err = reader.transmit(&[0x00, 0xA4, 0x04, 0x00], &mut r).unwrap_err();
    assert!(matches!(err, CardError::NoCard | CardError::Removed), "{err:?}");
    drop(back);

    // Reinsert the same card (its image file): still locked, share kept; unblock it with a
    // quorum authorization from the crypto card.
    let inserted = VpcdCard::insert_default(VirtualCard::open(&image).unwrap()).expect("connect to vpcd");
    wait_for(&mut reader, SlotEvent::Inserted);
    let mut card = AdminCard::new(reader);
    card.select().unwrap();
    let info = card.info().unwrap();
    assert_eq!((info.state, info.share_len as usize), (CardState::Locked, blob.len()));
    let new = pin("24680135");
    let ch = card.get_challenge().unwrap();
    let auth = domain.authorize(purpose::RESET_RETRY_COUNTER, b"GM-ADM-0001", &ch, new.expose_block()).unwrap();
    card.reset_retry_counter(&new, &auth).unwrap();
    card.verify_pin(&new).unwrap();
    assert_eq!(&card.get_share().unwrap()[..], &blob[..]);

    let mut reader = card.into_transport();
    drop(inserted);
    wait_for(&mut reader, SlotEvent::Removed);
    let _ = std::fs::remove_dir_all(&dir);
    drop(pcscd);
}
