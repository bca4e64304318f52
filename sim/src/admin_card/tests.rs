//! The virtual card through the real client, in-process: the life cycle, PIN counter,
//! domain-authorized commands, persistence, and hostile APDUs.

use super::*;
use gmhsm_icc::spec::purpose;
use gmhsm_icc::{AdminCard, AdminCardError as E, CardState, Pin, PinStatus, Role};

fn pin(s: &str) -> Pin {
    Pin::new(s.as_bytes()).unwrap()
}

/// A card taken to Operational with PIN 123456 and bound to `domain`.
fn operational(card: VirtualCard, domain: &SimDomainKey) -> AdminCard<VirtualCard> {
    let mut c = AdminCard::new(card);
    c.select().unwrap();
    c.personalize(b"SN-0001", Role::Administrator, 3).unwrap();
    c.set_initial_pin(&pin("123456")).unwrap();
    c.verify_pin(&pin("123456")).unwrap();
    c.generate_key().unwrap();
    c.bind_domain(&domain.public_point(), None).unwrap();
    c
}

#[test]
fn life_cycle_and_pin_counter() {
    let mut c = AdminCard::new(VirtualCard::blank());
    assert_eq!(c.info().unwrap_err(), E::WrongState, "nothing before SELECT");
    assert_eq!(c.select().unwrap(), spec::APP_VERSION);
    let info = c.info().unwrap();
    assert_eq!((info.state, info.role, info.public_key), (CardState::Blank, None, None));
    assert_eq!(c.verify_pin(&pin("123456")).unwrap_err(), E::WrongState);
    c.personalize(b"SN-0001", Role::Operator, 3).unwrap();
    assert_eq!(c.personalize(b"SN-0002", Role::Administrator, 3).unwrap_err(), E::WrongState);
    assert_eq!(c.generate_key().unwrap_err(), E::WrongState);
    c.set_initial_pin(&pin("123456")).unwrap();
    assert_eq!(c.set_initial_pin(&pin("654321")).unwrap_err(), E::WrongState);
    assert_eq!(c.generate_key().unwrap_err(), E::PinRequired);
    c.verify_pin(&pin("123456")).unwrap();
    let pk = c.generate_key().unwrap();
    assert_eq!(c.generate_key().unwrap_err(), E::WrongState, "the key is generated once");
    assert_eq!(c.public_key().unwrap(), pk);
    let info = c.info().unwrap();
    assert_eq!(info.serial, b"SN-0001");
    assert_eq!((info.state, info.role, info.public_key), (CardState::Operational, Some(Role::Operator), Some(pk)));

    let challenge = [7u8; 32];
    let sig = c.authenticate(&challenge).unwrap();
    assert!(verify_card_signature(&pk, b"SN-0001", &challenge, &sig));
    assert!(!verify_card_signature(&pk, b"SN-0002", &challenge, &sig));
    assert_eq!(c.authenticate(&[1; 8]).unwrap_err(), E::BadData);

    c.logout().unwrap();
    assert_eq!(c.pin_status().unwrap(), PinStatus::NotVerified { retries_left: 3 });
    assert_eq!(c.authenticate(&challenge).unwrap_err(), E::PinRequired);
    assert_eq!(c.verify_pin(&pin("000000")).unwrap_err(), E::WrongPin { retries_left: 2 });
    c.verify_pin(&pin("123456")).unwrap();
    assert_eq!(c.info().unwrap().pin_retries_left, 3, "a good PIN restores the counter");
    for left in [2, 1, 0] {
        assert_eq!(c.verify_pin(&pin("000000")).unwrap_err(), E::WrongPin { retries_left: left });
    }
    assert_eq!(c.verify_pin(&pin("123456")).unwrap_err(), E::Blocked);
    assert_eq!(c.pin_status().unwrap(), PinStatus::Blocked);
    assert_eq!(c.info().unwrap().state, CardState::Locked);
    assert_eq!(c.authenticate(&challenge).unwrap_err(), E::PinRequired);
}

#[test]
fn change_pin() {
    let domain = SimDomainKey::generate().unwrap();
    let mut c = operational(VirtualCard::blank(), &domain);
    assert_eq!(c.change_pin(&pin("999999"), &pin("24681357")).unwrap_err(), E::WrongPin { retries_left: 2 });
    c.change_pin(&pin("123456"), &pin("24681357")).unwrap();
    c.logout().unwrap();
    assert_eq!(c.verify_pin(&pin("123456")).unwrap_err(), E::WrongPin { retries_left: 2 });
    c.verify_pin(&pin("24681357")).unwrap();
}

#[test]
fn share_slot_and_unblock_need_domain_authorization() {
    let domain = SimDomainKey::generate().unwrap();
    let rogue = SimDomainKey::generate().unwrap();
    let mut c = operational(VirtualCard::blank(), &domain);
    let blob = domain.encrypt_share(&[0x42; 33]).unwrap();

    assert_eq!(c.get_share().unwrap_err(), E::NotFound);
    // No fresh challenge: refused.
    let stale = c.get_challenge().unwrap();
    c.info().unwrap();
    let sig = domain.authorize(purpose::PUT_SHARE, b"SN-0001", &stale, &blob).unwrap();
    assert_eq!(c.put_share(Some(&blob), &sig).unwrap_err(), E::WrongState);
    // A rogue key, or a signature for another payload: refused.
    let ch = c.get_challenge().unwrap();
    let sig = rogue.authorize(purpose::PUT_SHARE, b"SN-0001", &ch, &blob).unwrap();
    assert_eq!(c.put_share(Some(&blob), &sig).unwrap_err(), E::AuthorizationRejected);
    let ch = c.get_challenge().unwrap();
    let sig = domain.authorize(purpose::PUT_SHARE, b"SN-0001", &ch, b"other").unwrap();
    assert_eq!(c.put_share(Some(&blob), &sig).unwrap_err(), E::AuthorizationRejected);
    let ch = c.get_challenge().unwrap();
    let sig = domain.authorize(purpose::PUT_SHARE, b"SN-0001", &ch, &blob).unwrap();
    c.put_share(Some(&blob), &sig).unwrap();
    assert_eq!(c.info().unwrap().share_len as usize, blob.len());
    assert_eq!(&c.get_share().unwrap()[..], &blob[..]);
    assert_eq!(&domain.decrypt_share(&c.get_share().unwrap()).unwrap()[..], &[0x42; 33]);
    c.logout().unwrap();
    assert_eq!(c.get_share().unwrap_err(), E::PinRequired);

    // Lock, then unblock with a quorum-authorized new PIN.
    for _ in 0..3 {
        let _ = c.verify_pin(&pin("000000"));
    }
    assert_eq!(c.info().unwrap().state, CardState::Locked);
    let new = pin("11223344");
    let ch = c.get_challenge().unwrap();
    let sig = rogue.authorize(purpose::RESET_RETRY_COUNTER, b"SN-0001", &ch, new.expose_block()).unwrap();
    assert_eq!(c.reset_retry_counter(&new, &sig).unwrap_err(), E::AuthorizationRejected);
    let ch = c.get_challenge().unwrap();
    let sig = domain.authorize(purpose::RESET_RETRY_COUNTER, b"SN-0001", &ch, new.expose_block()).unwrap();
    c.reset_retry_counter(&new, &sig).unwrap();
    assert_eq!(c.info().unwrap().state, CardState::Operational);
    c.verify_pin(&new).unwrap();

    // Erase the share; rebind to a new domain key with the old key's authorization.
    let ch = c.get_challenge().unwrap();
    let sig = domain.authorize(purpose::PUT_SHARE, b"SN-0001", &ch, b"").unwrap();
    c.put_share(None, &sig).unwrap();
    assert_eq!(c.get_share().unwrap_err(), E::NotFound);
    assert_eq!(c.bind_domain(&rogue.public_point(), None).unwrap_err(), E::BadData);
    let ch = c.get_challenge().unwrap();
    let sig = domain.authorize(purpose::BIND_DOMAIN, b"SN-0001", &ch, &rogue.public_point()).unwrap();
    c.bind_domain(&rogue.public_point(), Some(&sig)).unwrap();
    assert_eq!(c.info().unwrap().domain_key, Some(rogue.public_point()));
}

#[test]
fn image_persists_and_resists_corruption() {
    let dir = std::env::temp_dir().join(format!("gmhsm-card-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("card.img");
    let _ = std::fs::remove_file(&path);
    let domain = SimDomainKey::generate().unwrap();
    let mut c = operational(VirtualCard::open(&path).unwrap(), &domain);
    let pk = c.public_key().unwrap();
    assert_eq!(c.verify_pin(&pin("000000")).unwrap_err(), E::WrongPin { retries_left: 2 });
    drop(c);

    let mut c = AdminCard::new(VirtualCard::open(&path).unwrap());
    c.select().unwrap();
    let info = c.info().unwrap();
    assert_eq!((info.state, info.pin_retries_left, info.public_key), (CardState::Operational, 2, Some(pk)));
    assert_eq!(c.authenticate(&[0; 16]).unwrap_err(), E::PinRequired, "verification is volatile");
    c.verify_pin(&pin("123456")).unwrap();

    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes.truncate(n - 3);
    std::fs::write(&path, &bytes).unwrap();
    assert!(VirtualCard::open(&path).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hostile_apdus_get_status_words() {
    let mut card = VirtualCard::blank();
    let mut x: u32 = 0x9E37_79B9;
    let mut select = vec![0x00, 0xA4, 0x04, 0x00, 0x08];
    select.extend_from_slice(&spec::AID);
    for i in 0..20_000usize {
        if i % 100 == 0 {
            assert_eq!(card.process(&select)[..], [card_fci(), vec![0x90, 0x00]].concat()[..]);
        }
        let len = i % 300;
        let mut v: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        if len >= 2 {
            v[0] = [0x00, 0x80][i % 2];
            v[1] = [0xCA, 0xDA, 0x20, 0x24, 0x2C, 0x47, 0x84, 0x88, 0x10, 0xA4][i % 10];
        }
        let r = card.process(&v);
        assert!(r.len() >= 2);
    }
}

fn card_fci() -> Vec<u8> {
    let mut inner = Vec::new();
    gmhsm_icc::tlv::put(&mut inner, spec::tag::FCI_AID, &spec::AID);
    gmhsm_icc::tlv::put(&mut inner, spec::tag::FCI_VERSION, &spec::APP_VERSION.to_be_bytes());
    let mut fci = Vec::new();
    gmhsm_icc::tlv::put(&mut fci, spec::tag::FCI, &inner);
    fci
}
