//! Ceremonies at the panel's menu of jobs, driven through the control socket's commands (the
//! path `gmhsm-sim panel --card-check / --change-pin / --insert / --keys` takes): the people
//! follow the LCD, insert the card it asks for and type on the keypad.

use std::time::Duration;

use gmhsm_provisioning::front::control::{Command, Console, parse_keys};

use crate::panel::{FrontPanel, Shared, demo};

const WAIT: Duration = Duration::from_secs(30);

fn keys(s: &str) -> Command {
    Command::Keys(parse_keys(s).expect("keys"))
}

/// Card check and PIN change, each from the panel alone: the check proves the PIN and a
/// trial login; after the change the old PIN is wrong (a try is lost) and the new one works.
#[test]
fn a_card_is_checked_and_its_pin_changed_at_the_panel() {
    let dir = std::env::temp_dir().join(format!("gmhsm-panel-jobs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let socket = crate::ceremony::start_card(&dir.join("card")).unwrap();
    let panel = FrontPanel::start(&dir, &socket).unwrap();
    panel.running("test link");
    let cards = demo::DemoCards::create(&dir.join("cards"), 3, 2).unwrap();
    demo::init(&panel, &cards).unwrap();
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
    let dir = std::env::temp_dir().join(format!("gmhsm-panel-unblock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let socket = crate::ceremony::start_card(&dir.join("card")).unwrap();
    let panel = FrontPanel::start(&dir, &socket).unwrap();
    panel.running("test link");
    let cards = demo::DemoCards::create(&dir.join("cards"), 3, 2).unwrap();
    demo::init(&panel, &cards).unwrap();
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
