//! Ceremonies at the panel's menu of jobs, driven through the control socket's commands (the
//! path `gmhsm-sim panel --card-check / --change-pin / --insert / --keys` takes): the people
//! follow the LCD, insert the card it asks for and type on the keypad.

use std::time::Duration;

use gmhsm_provisioning::front::control::{Command, Console, parse_keys};

use crate::panel::{FrontPanel, Shared, demo};

const WAIT: Duration = Duration::from_secs(30);

/// A card and a panel in a fresh `TMP/NAME-PID`, initialized with the demo cards (3 of 2).
fn initialized(name: &str) -> (std::path::PathBuf, FrontPanel, demo::DemoCards) {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let socket = crate::ceremony::start_card(&dir.join("card")).unwrap();
    let panel = FrontPanel::start(&dir, &socket).unwrap();
    panel.running("test link");
    let cards = demo::DemoCards::create(&dir.join("cards"), 3, 2).unwrap();
    demo::init(&panel, &cards).unwrap();
    (dir, panel, cards)
}

fn keys(s: &str) -> Command {
    Command::Keys(parse_keys(s).expect("keys"))
}

/// Card check and PIN change, each from the panel alone: the check proves the PIN and a
/// trial login; after the change the old PIN is wrong (a try is lost) and the new one works.
#[test]
fn a_card_is_checked_and_its_pin_changed_at_the_panel() {
    let (dir, panel, cards) = initialized("gmhsm-panel-jobs");
    let old = cards.cards.iter().find(|c| c.name == "operator-1").unwrap().pin.clone();
    let new = "24681357";
    assert_ne!(old.as_str(), new);
    let mut lcd = panel.view();
    let run = |c: Command| panel.execute(c).unwrap_or_else(|e| panic!("{e}"));
    let last = || Shared::get(&panel.shared().last);

    run(Command::CheckCard);
    lcd.expect(&["Insert card", "to check"], WAIT).unwrap();
    run(Command::Insert("operator-1".into()));
    lcd.expect(&["Enter PIN"], WAIT).unwrap();
    run(keys(&format!("{},OK", old.as_str())));
    lcd.expect(&["Card OK", "", "", "Remove card"], WAIT).unwrap();
    run(Command::Remove);
    assert_eq!(last(), "card-check: card OK");

    run(Command::ChangePin);
    lcd.expect(&["Insert card", "to change PIN"], WAIT).unwrap();
    run(Command::Insert("operator-1".into()));
    lcd.expect(&["Old PIN"], WAIT).unwrap();
    run(keys(&format!("{},OK", old.as_str())));
    lcd.expect(&["New PIN"], WAIT).unwrap();
    run(keys(&format!("{new},OK")));
    lcd.expect(&["Confirm PIN"], WAIT).unwrap();
    run(keys(&format!("{new},OK")));
    lcd.expect(&["PIN changed", "", "", "Remove card"], WAIT).unwrap();
    run(Command::Remove);
    assert_eq!(last(), "change-pin: PIN changed");

    // The old PIN no longer opens the card; the new one does.
    run(Command::CheckCard);
    run(Command::Insert("operator-1".into()));
    run(keys(&format!("{},OK", old.as_str())));
    lcd.expect(&["Wrong PIN"], WAIT).unwrap();
    run(keys("OK"));
    run(keys(&format!("{new},OK")));
    lcd.expect(&["Card OK"], WAIT).unwrap();
    run(Command::Remove);
    assert_eq!(last(), "card-check: card OK");

    // Someone logged in: neither job starts (nothing is asked of the card in the reader).
    demo::quorum_login(&panel, &cards).unwrap();
    for c in [Command::CheckCard, Command::ChangePin] {
        run(c);
        lcd.expect(&["Refused", "Someone is logged in"], WAIT).unwrap();
        assert!(last().ends_with("someone is logged in at the panel: log out first"), "{}", last());
        // A key dismisses the page, so the next refusal is a page of its own.
        run(keys("MENU"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// PIN unblock by quorum at the panel: three wrong PINs lock the operator's card (a card
/// check shows `Card locked`); a quorum logs in, `unblock-pin` asks for the locked card, its
/// holder chooses a new PIN, and the card works again with it; the quorum's authority ends.
#[test]
fn a_locked_card_is_unblocked_by_a_quorum_at_the_panel() {
    let (dir, panel, cards) = initialized("gmhsm-panel-unblock");
    let mut lcd = panel.view();
    let run = |c: Command| panel.execute(c).unwrap_or_else(|e| panic!("{e}"));
    let last = || Shared::get(&panel.shared().last);

    // No quorum: refused, nothing asked of anyone.
    run(Command::UnblockPin);
    lcd.expect(&["Refused", "No quorum logged in"], WAIT).unwrap();
    run(keys("MENU"));

    run(Command::CheckCard);
    run(Command::Insert("operator-1".into()));
    for _ in 0..2 {
        run(keys("00000000,OK"));
        lcd.expect(&["Wrong PIN"], WAIT).unwrap();
        run(keys("OK"));
    }
    run(keys("00000000,OK"));
    lcd.expect(&["Card locked", "Needs unblock"], WAIT).unwrap();
    run(Command::Remove);
    assert_eq!(last(), "card-check: card locked");

    demo::quorum_login(&panel, &cards).unwrap();
    run(Command::UnblockPin);
    lcd.expect(&["Remove card"], WAIT).unwrap();
    run(Command::Remove);
    lcd.expect(&["Insert locked", "card"], WAIT).unwrap();
    run(Command::Insert("operator-1".into()));
    lcd.expect(&["New PIN"], WAIT).unwrap();
    run(keys("13572468,OK"));
    lcd.expect(&["Confirm PIN"], WAIT).unwrap();
    run(keys("13572468,OK"));
    lcd.expect(&["PIN unblocked", "", "", "Remove card"], WAIT).unwrap();
    run(Command::Remove);
    assert_eq!(last(), "unblock-pin: PIN unblocked");

    run(Command::CheckCard);
    run(Command::Insert("operator-1".into()));
    run(keys("13572468,OK"));
    lcd.expect(&["Card OK"], WAIT).unwrap();
    run(Command::Remove);
    // The authority ended: a second unblock needs a new quorum.
    run(Command::UnblockPin);
    lcd.expect(&["Refused", "No quorum logged in"], WAIT).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Zeroize by quorum at the panel: refused without a quorum; with one, the panel asks for a
/// confirmation: CANCEL changes nothing (the authority ends all the same), OK wipes the
/// appliance back to its factory state ("Awaiting init").
#[test]
fn the_appliance_is_zeroized_by_a_quorum_after_a_confirmation() {
    let (dir, panel, cards) = initialized("gmhsm-panel-zeroize");
    let mut lcd = panel.view();
    let run = |c: Command| panel.execute(c).unwrap_or_else(|e| panic!("{e}"));
    let last = || Shared::get(&panel.shared().last);

    run(Command::Zeroize);
    lcd.expect(&["Refused", "No quorum logged in"], WAIT).unwrap();
    run(keys("MENU"));

    demo::quorum_login(&panel, &cards).unwrap();
    run(Command::Zeroize);
    lcd.expect(&["ZEROIZE?", "All keys lost", "for good", "OK=yes CANCEL=no"], WAIT).unwrap();
    run(keys("CANCEL"));
    run(Command::Remove);
    assert!(last().starts_with("zeroize: ") && last() != "zeroize: zeroized", "{}", last());
    run(keys("MENU"));
    let keys_row = |l: &[String]| l.iter().any(|r| r.contains(" keys")) && !l.iter().any(|r| r == "Awaiting init");
    lcd.wait_for("the status page of an initialized appliance", WAIT, keys_row).unwrap();
    // The cancelled zeroize ended the authority: a second needs a new quorum.
    run(Command::Zeroize);
    lcd.expect(&["Refused", "No quorum logged in"], WAIT).unwrap();
    run(keys("MENU"));

    demo::quorum_login(&panel, &cards).unwrap();
    run(Command::Zeroize);
    lcd.expect(&["ZEROIZE?"], WAIT).unwrap();
    run(keys("OK"));
    lcd.expect(&["Zeroized", "", "", "Remove card"], WAIT).unwrap();
    run(Command::Remove);
    assert_eq!(last(), "zeroize: zeroized");
    run(keys("MENU"));
    lcd.wait_for("the factory state", WAIT, |l| l.iter().any(|r| r == "Awaiting init")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Registering and revoking an application at the panel under a quorum: the revoked
/// application is gone (a second revocation is refused by the card); without a quorum the
/// panel refuses.
#[test]
fn an_application_is_registered_and_revoked_at_the_panel() {
    let (dir, panel, cards) = initialized("gmhsm-panel-revoke");
    let mut lcd = panel.view();
    let run = |c: Command| panel.execute(c);
    let last = || Shared::get(&panel.shared().last);
    let cert_sha256 = [0x5a; 32];

    assert!(run(Command::Revoke { cert_sha256 }).is_err());
    lcd.expect(&["Refused", "No quorum logged in"], WAIT).unwrap();
    run(keys("MENU")).unwrap();

    demo::quorum_login(&panel, &cards).unwrap();
    let register = Command::parse(&format!("register-app {} billing 1 3", "5a".repeat(32))).unwrap();
    run(register).unwrap_or_else(|e| panic!("{e}"));
    run(Command::Revoke { cert_sha256 }).unwrap_or_else(|e| panic!("{e}"));
    lcd.expect(&["Application", "revoked", "cert 5a5a5a5a..."], WAIT).unwrap();
    assert_eq!(last(), "revoke-app: revoked");
    run(keys("MENU")).unwrap();
    assert!(run(Command::Revoke { cert_sha256 }).is_err(), "revoked twice");
    lcd.expect(&["Revoke refused", "cert 5a5a5a5a..."], WAIT).unwrap();
    assert!(last().starts_with("revoke-app: crypto card refused"), "{}", last());
    run(Command::Logout).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
