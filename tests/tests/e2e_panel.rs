//! The simulator's front panel end to end: `gmhsm-sim up --demo` initializes the appliance
//! through the init ceremony with virtual cards whose PINs it writes to STATE/cards/PINS.txt;
//! a person (this test) then drives a quorum login with `gmhsm-sim panel` — insert a card,
//! type its PIN, watch the LCD — registers an application under the quorum's authority, and
//! ends that authority by pulling the last card. Also: the status page (device state, link
//! address, sessions and load), stopping and starting the service under the quorum from the
//! local socket, hostile panel commands, a script, and the alarm page after a tamper event.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use gmhsm_tests::*;

/// `gmhsm --socket STATE/local.sock args...`: the appliance's own tools.
fn local(state: &Path, args: &[&str]) -> Output {
    Command::new(bin("gmhsm")).arg("--socket").arg(state.join("local.sock")).args(args).output().unwrap()
}

/// `gmhsm --socket STATE/local.sock args...` as an administrative tool: its session asks for
/// approval, the panel shows `Approve tool`, OK is pressed there, and the tool goes on.
fn approved(state: &Path, args: &[&str]) -> Output {
    approved_as(state, args, "quorum")
}

/// [`approved`], the panel naming the `powers` the tool gets (quorum, operator, auditor).
fn approved_as(state: &Path, args: &[&str], powers: &str) -> Output {
    let child = spawn_local(state, args);
    shows(&eventually(state, "Approve tool"), &["Approve tool", &format!("({powers} powers)"), "OK / CANCEL"]);
    lcd(state, &["--keys", "OK"]);
    child.wait_with_output().unwrap()
}

/// The command failed with the card's `access denied`.
#[track_caller]
fn denied(out: &Output, what: &str) {
    assert!(!out.status.success(), "{what} must be refused: {out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("access denied"), "{what}: {out:?}");
}

/// How many applications the audit trail says were registered.
fn registrations(state: &Path) -> usize {
    String::from_utf8_lossy(&ok(&local(state, &["audit"]), "audit")).matches("ApplicationRegistered").count()
}

/// `gmhsm-sim panel --state STATE args...`.
fn panel(state: &Path, args: &[&str]) -> Output {
    Command::new(bin("gmhsm-sim")).arg("panel").arg("--state").arg(state).args(args).output().unwrap()
}

/// The panel's LCD after `args`, which must succeed.
#[track_caller]
fn lcd(state: &Path, args: &[&str]) -> String {
    String::from_utf8(ok(&panel(state, args), &format!("panel {args:?}"))).unwrap()
}

/// The command must fail, saying `why`; returns the LCD it printed.
#[track_caller]
fn refused(state: &Path, args: &[&str], why: &str) -> String {
    let out = panel(state, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "panel {args:?} must fail");
    assert!(err.contains(why), "panel {args:?} must say {why:?}: {err}");
    String::from_utf8(out.stdout).unwrap()
}

#[track_caller]
fn shows(screen: &str, rows: &[&str]) {
    for r in rows {
        assert!(screen.contains(&format!("|{r:20}|")), "the panel must show the row {r:?}:\n{screen}");
    }
}

/// Wait until the panel shows `text` (the status page comes back after a ceremony's last
/// page has been shown for a moment).
#[track_caller]
fn eventually(state: &Path, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = lcd(state, &[]);
        if s.contains(text) {
            return s;
        }
        assert!(Instant::now() < deadline, "the panel never showed {text:?}; it shows\n{s}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn pins(state: &Path) -> Vec<(String, String)> {
    let path = state.join("cards/PINS.txt");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600, "PINS.txt is private");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(' ').map(|(n, p)| (n.to_string(), p.to_string())))
        .collect()
}

fn pin_of(pins: &[(String, String)], card: &str) -> String {
    pins.iter().find(|(n, _)| n == card).map(|(_, p)| p.clone()).unwrap_or_else(|| panic!("no PIN for {card}"))
}

/// A PIN that is not `pin` (each digit moved by one).
fn wrong(pin: &str) -> String {
    pin.bytes().map(|b| char::from(b'0' + (b - b'0' + 1) % 10)).collect()
}

#[test]
fn quorum_login_at_the_panel_and_a_removed_card_ends_it() {
    let tmp = TempDir::new("panel");
    let state = tmp.path().join("state");
    let app = Appliance::start(&state, &["--demo"]);
    let pins = pins(&state);
    let names: Vec<&str> = pins.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["admin-1", "admin-2", "admin-3", "operator-1", "auditor-1"]);
    assert!(pins.iter().all(|(_, p)| p.len() == 8 && p.bytes().all(|b| b.is_ascii_digit())));

    // The status page: device state and the private link's address.
    let addr = std::fs::read_to_string(app.profile())
        .unwrap()
        .lines()
        .find_map(|l| Some(l.strip_prefix("address = \"")?.strip_suffix('"')?.to_string()))
        .unwrap();
    let s = eventually(&state, "READY");
    shows(&s, &["READY", &addr]);
    assert!(s.starts_with("+--------------------+\n"), "framed:\n{s}");
    // The demo initialized through the ceremony: SDF keys from the commit, demo app registered.
    let keys = String::from_utf8(ok(&app.cli(&["key", "list"]), "key list")).unwrap();
    assert!(keys.contains("sdf:enc:0") && keys.contains("sdf:sign:0"), "{keys}");

    // Without a quorum, administration is refused, at the panel and over the local socket.
    let payroll = String::from_utf8(ok(
        &Command::new(bin("gmhsm-sim"))
            .args(["client-cert", "--name", "payroll", "--state"])
            .arg(&state)
            .output()
            .unwrap(),
        "client-cert",
    ))
    .unwrap();
    assert!(payroll.trim().ends_with("payroll.toml"));
    let cert = state.join("pki/payroll.pem");
    let c = cert.to_str().unwrap();
    // With a quota of one key (the panel passes it to the card).
    let register = ["--register-app", c, "--name", "payroll", "--domains", "4", "--caps", "sign", "--max-keys", "1"];
    shows(&refused(&state, &register, "no quorum logged in"), &["Refused"]);
    let local = Command::new(bin("gmhsm"))
        .arg("--socket")
        .arg(state.join("local.sock"))
        .args([
            "register-app",
            "--cert",
            cert.to_str().unwrap(),
            "--name",
            "payroll",
            "--domains",
            "4",
            "--caps",
            "sign",
        ])
        .output()
        .unwrap();
    assert!(!local.status.success(), "the local socket's session holds no quorum authority");
    let stop = self::local(&state, &["service", "stop"]);
    assert!(!stop.status.success(), "no quorum, no service stop");
    assert!(String::from_utf8_lossy(&stop.stderr).contains("access denied"), "{stop:?}");
    let registered_before = registrations(&state);

    // Hostile or mistaken commands get a clear error and change nothing.
    refused(&state, &["--insert", "../../etc/passwd"], "card name");
    refused(&state, &["--insert", "admin-9"], "no card");
    refused(&state, &["--keys", "12,PANIC"], "unknown key");
    refused(&state, &["--remove"], "empty");

    // The quorum login, card by card.
    shows(&lcd(&state, &["--login"]), &["Insert admin", "card 1 of 2"]);
    shows(&lcd(&state, &["--insert", "admin-1"]), &["Enter PIN", "PIN:"]);
    refused(&state, &["--insert", "admin-2"], "already holds admin-1");
    shows(&lcd(&state, &["--keys", "123"]), &["PIN: ***"]);
    shows(&lcd(&state, &["--keys", "DOWN"]), &["PIN: **"]);
    shows(&lcd(&state, &["--keys", "DOWN,DOWN"]), &["PIN:"]);
    let p1 = pin_of(&pins, "admin-1");
    shows(&lcd(&state, &["--keys", &format!("{},OK", wrong(&p1))]), &["Wrong PIN", "2 tries left"]);
    shows(&lcd(&state, &["--keys", "OK"]), &["Enter PIN"]);
    shows(&lcd(&state, &["--keys", &format!("{p1},OK")]), &["Remove card"]);
    shows(&lcd(&state, &["--remove"]), &["Insert admin", "card 2 of 2"]);
    // Finding 8: a command the panel cannot take now (a login waits for its second card) is
    // refused at once — and forgotten: it used to run as soon as the login completed.
    refused(&state, &register, "busy");
    shows(&lcd(&state, &["--insert", "admin-2"]), &["Enter PIN"]);
    shows(&lcd(&state, &["--keys", &format!("{},OK", pin_of(&pins, "admin-2"))]), &["ADMIN LOGGED IN"]);
    let s = eventually(&state, "Quorum 2 of 2");
    shows(&s, &["ADMIN LOGGED IN", &addr]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(registrations(&state), registered_before, "the refused registration never happened");
    // Finding 6: a local tool does not share the panel's session: unapproved, it is refused.
    let unapproved = Command::new(bin("gmhsm"))
        .arg("--socket")
        .arg(state.join("local.sock"))
        .args(["service", "stop"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    eventually(&state, "Approve tool");
    lcd(&state, &["--keys", "CANCEL"]);
    let out = unapproved.wait_with_output().unwrap();
    assert!(!out.status.success(), "refused at the panel: {out:?}");
    assert!(!String::from_utf8(ok(&self::local(&state, &["status"]), "status")).unwrap().contains("STOPPED"));

    // Administration under the quorum's authority held at the panel.
    shows(&lcd(&state, &register), &["Application", "registered"]);
    let p = gmhsm_client::Profile::load(state.join("payroll.toml")).unwrap();
    let mut c = gmhsm_client::Client::connect(&p).unwrap();
    c.generate_key("payroll-key", gmhsm_proto::KeyAlg::Sm2).unwrap();
    assert!(
        matches!(
            c.generate_key("payroll-key-2", gmhsm_proto::KeyAlg::Sm2),
            Err(gmhsm_client::ClientError::Status(gmhsm_proto::Status::QuotaExceeded))
        ),
        "the quota registered at the panel holds"
    );
    let mech = gmhsm_proto::Mechanism::sm2_default();
    c.sign("payroll-key", mech.clone(), b"pay 100").unwrap();

    // The status page's load line: open card sessions and requests per second (from two
    // readings of the card's counter), whatever their values.
    let s = eventually(&state, " req/s");
    assert!(s.lines().any(|l| l.starts_with("|Sess ") && l.contains(" req/s")), "a load line:\n{s}");

    // Stopping the service under the quorum, from the local socket: applications are refused
    // (their connection stays up), local tools go on; starting it again serves them again.
    ok(&approved(&state, &["service", "stop"]), "service stop, approved at the panel");
    match c.sign("payroll-key", mech.clone(), b"pay 100") {
        Err(gmhsm_client::ClientError::Status(gmhsm_proto::Status::ServiceStopped)) => {}
        other => panic!("a stopped service refuses applications: {other:?}"),
    }
    c.ping().unwrap();
    let st = String::from_utf8(ok(&self::local(&state, &["status"]), "status")).unwrap();
    assert!(st.contains("service: STOPPED") && st.contains("sessions: "), "{st}");
    ok(&self::local(&state, &["key", "list"]), "local tools work while stopped");
    shows(&eventually(&state, "SERVICE STOPPED"), &["ADMIN LOGGED IN", "SERVICE STOPPED"]);
    ok(&approved(&state, &["service", "start"]), "service start, approved at the panel");
    c.sign("payroll-key", mech.clone(), b"pay 100").unwrap();
    let st = String::from_utf8(ok(&self::local(&state, &["status"]), "status")).unwrap();
    assert!(st.contains("service: running"), "{st}");

    // Pulling the last card ends the authority; administration is refused again.
    shows(&lcd(&state, &["--remove"]), &["READY", "admin logged out"]);
    refused(&state, &register, "no quorum logged in");
    let s = eventually(&state, &addr);
    shows(&s, &["READY"]);
    assert!(!self::local(&state, &["service", "stop"]).status.success(), "the authority ended");
    c.sign("payroll-key", mech, b"pay 100").unwrap();

    // The same login as a script, with a card whose PIN is refused on the way.
    let script = tmp.path().join("login.txt");
    std::fs::write(
        &script,
        format!(
            "# a quorum login\nlogin\nwait-lcd card 1 of 2\ninsert admin-3\nkeys {},OK\nwait-lcd Remove card\nremove\n\
             insert admin-2\nkeys {},OK\nwait-lcd Quorum 2 of 2\nremove\nwait-lcd admin logged out\n",
            pin_of(&pins, "admin-3"),
            pin_of(&pins, "admin-2")
        ),
    )
    .unwrap();
    let out = lcd(&state, &["--script", script.to_str().unwrap()]);
    assert!(out.contains("> insert admin-3") && out.contains("|ADMIN LOGGED IN     |"), "{out}");
    assert!(out.contains("|admin logged out    |"), "{out}");

    // An opened enclosure is an alarm on the panel.
    ok(&Command::new(bin("gmhsm-sim")).args(["trip-tamper", "--state"]).arg(&state).output().unwrap(), "trip-tamper");
    let _ = app.cli(&["key", "list"]);
    eventually(&state, "!! ALARM !!");
}

/// `gmhsm-sim client-cert --name NAME`: a new application's certificate (PEM path).
fn client_cert(state: &Path, name: &str) -> std::path::PathBuf {
    let out = Command::new(bin("gmhsm-sim")).args(["client-cert", "--name", name, "--state"]).arg(state).output();
    ok(&out.unwrap(), "client-cert");
    state.join(format!("pki/{name}.pem"))
}

/// Start a login with `start` (`--login`, `--operator-login`, `--auditor-login`) and log in
/// each of `cards` in turn (PIN typed, card taken out between them); the last stays in.
fn log_in(state: &Path, pins: &[(String, String)], start: &str, cards: &[&str]) {
    lcd(state, &[start]);
    for (i, card) in cards.iter().enumerate() {
        shows(&lcd(state, &["--insert", card]), &["Enter PIN"]);
        lcd(state, &["--keys", &format!("{},OK", pin_of(pins, card))]);
        if i + 1 < cards.len() {
            eventually(state, "Remove card");
            lcd(state, &["--remove"]);
        }
    }
}

/// Issue 12 (gap of finding 6): `gmhsm key generate / set-password / delete` of `sdf:` labels
/// from the local socket ask for approval at the panel, as the card requires on a
/// ceremony-initialized appliance. The CLI used to send them unapproved, and the card refused
/// them even while a quorum was logged in (this test then waited for an approval page that
/// never came). Other keys need no approval.
#[test]
fn sdf_keys_from_the_local_cli_are_approved_at_the_panel() {
    let tmp = TempDir::new("panel-sdf");
    let state = tmp.path().join("state");
    let _app = Appliance::start(&state, &["--demo"]);
    let pins = pins(&state);
    eventually(&state, "READY");
    let generate = ["key", "generate", "--alg", "sm4", "--label", "sdf:kek:7"];
    // Nobody at the panel: nobody to approve, refused at once.
    denied(&local(&state, &generate), "an sdf: key without a quorum");
    ok(&local(&state, &["key", "generate", "--alg", "sm4", "--label", "tool-key"]), "a local key, no approval");

    log_in(&state, &pins, "--login", &["admin-1", "admin-2"]);
    eventually(&state, "Quorum 2 of 2");
    let out = approved(&state, &generate);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("approval code"), "the tool prints its code: {said}");
    ok(&out, "key generate sdf:kek:7, approved");
    let set = ["key", "set-password", "--label", "sdf:kek:7", "--new-password", "kek-pass-7"];
    ok(&approved(&state, &set), "key set-password sdf:kek:7, approved");
    let keys = String::from_utf8(ok(&local(&state, &["key", "list"]), "key list")).unwrap();
    assert!(keys.contains("sdf:kek:7") && keys.contains("tool-key"), "{keys}");
    ok(&approved(&state, &["key", "delete", "--label", "sdf:kek:7"]), "key delete sdf:kek:7, approved");
    let keys = String::from_utf8(ok(&local(&state, &["key", "list"]), "key list")).unwrap();
    assert!(!keys.contains("sdf:kek:7"), "deleted: {keys}");
    shows(&lcd(&state, &["--remove"]), &["READY", "admin logged out"]);
    denied(&local(&state, &generate), "an sdf: key after the quorum left");
}

/// Issue 12 (roles at the panel): an operator logs in with their card, stops and starts the
/// service and runs the self-tests from the panel's menu, and approves a tool for what
/// operators may do (service stop / start) but not for the quorum's work; an auditor logs in
/// and approves a tool that reads the audit trail and can stop nothing. Removing either card
/// logs its holder out, confirmed by the card. The panel had no such logins before.
#[test]
fn operator_and_auditor_at_the_panel() {
    let tmp = TempDir::new("panel-roles");
    let state = tmp.path().join("state");
    let app = Appliance::start(&state, &["--demo"]);
    let pins = pins(&state);
    eventually(&state, "READY");

    // The operator's login takes only an operator card.
    shows(&lcd(&state, &["--operator-login"]), &["Insert operator", "card"]);
    shows(&lcd(&state, &["--insert", "admin-1"]), &["Wrong card", "Not the right role"]);
    shows(&lcd(&state, &["--remove"]), &["Insert operator"]);
    refused(&state, &["--auditor-login"], "busy");
    shows(&lcd(&state, &["--insert", "operator-1"]), &["Enter PIN"]);
    let p = pin_of(&pins, "operator-1");
    shows(&lcd(&state, &["--keys", &format!("{p},OK")]), &["Operator logged in", "Card stays in the"]);
    let menu = ["OPERATOR LOGGED IN", "Service running", "1 Stop  2 Self-test", "Remove card=log out"];
    shows(&eventually(&state, "OPERATOR LOGGED IN"), &menu);
    shows(&lcd(&state, &["--login"]), &["Refused", "Someone is logged in", "Log out first"]);
    shows(&eventually(&state, "OPERATOR LOGGED IN"), &menu);

    // Self-test from the menu.
    shows(&lcd(&state, &["--keys", "2"]), &["Self-test passed"]);
    eventually(&state, "OPERATOR LOGGED IN");
    // Stop the service: asked first; CANCEL changes nothing, OK stops it.
    shows(&lcd(&state, &["--keys", "1"]), &["Stop service?", "OK=yes  CANCEL=no"]);
    shows(&lcd(&state, &["--keys", "CANCEL"]), &menu);
    assert!(String::from_utf8(ok(&local(&state, &["status"]), "status")).unwrap().contains("service: running"));
    lcd(&state, &["--keys", "1"]);
    shows(&lcd(&state, &["--keys", "OK"]), &["Service stopped"]);
    assert!(String::from_utf8(ok(&local(&state, &["status"]), "status")).unwrap().contains("service: STOPPED"));
    assert!(!app.cli(&["key", "list"]).status.success(), "applications are refused while stopped");
    shows(&eventually(&state, "SERVICE STOPPED"), &["OPERATOR LOGGED IN", "1 Start 2 Self-test"]);
    // A tool approved by the operator starts it again; it gets no quorum powers.
    ok(&approved_as(&state, &["service", "start"], "operator"), "service start, approved by the operator");
    ok(&app.cli(&["key", "list"]), "applications served again");
    let sdf = ["key", "generate", "--alg", "sm4", "--label", "sdf:kek:9"];
    denied(&approved_as(&state, &sdf, "operator"), "an sdf: key under an operator");
    let cert = client_cert(&state, "payroll");
    let register = ["register-app", "--cert", cert.to_str().unwrap(), "--name", "payroll"];
    denied(&approved_as(&state, &register, "operator"), "register-app under an operator");
    // The card leaves: logged out, as the card confirms; nobody approves tools any more.
    shows(&lcd(&state, &["--remove"]), &["READY", "operator logged out"]);
    denied(&local(&state, &["service", "stop"]), "service stop after the operator left");

    // The auditor: the audit trail's extent and chain state; nothing to stop from the menu.
    log_in(&state, &pins, "--auditor-login", &["auditor-1"]);
    let s = eventually(&state, "AUDITOR LOGGED IN");
    shows(&s, &["Audit chain OK", "Remove card=log out"]);
    assert!(s.contains("|Audit #"), "{s}");
    shows(&lcd(&state, &["--keys", "1"]), &["AUDITOR LOGGED IN"]);
    // A tool approved by the auditor reads the audit trail with the auditor's role...
    let mut tool = gmhsm_client::Client::connect_local(&state.join("local.sock"), Duration::from_secs(30)).unwrap();
    let code = tool.request_approval().unwrap();
    let s = eventually(&state, &format!("session {code:04}?"));
    shows(&s, &["Approve tool", "(auditor powers)"]);
    lcd(&state, &["--keys", "OK"]);
    let st = tool.admin_status().unwrap();
    assert_eq!(st.role, Some(gmhsm_proto::CardRole::Auditor), "{st:?}");
    let trail = tool.read_audit(1, 256).unwrap();
    assert!(
        trail.iter().any(|r| format!("{:?}", r.event).contains("ToolSession")),
        "the approval is on the audit trail"
    );
    // ... and stops nothing.
    match tool.set_service(true) {
        Err(gmhsm_client::ClientError::Status(gmhsm_proto::Status::AccessDenied)) => {}
        other => panic!("an auditor's tool cannot stop the service: {other:?}"),
    }
    denied(&approved_as(&state, &["service", "stop"], "auditor"), "service stop under an auditor");
    shows(&lcd(&state, &["--remove"]), &["READY", "auditor logged out"]);
    assert_eq!(tool.admin_status().unwrap().role, None, "the grant ended with the auditor's login");
}

/// Card check and PIN change from the panel's commands (`--card-check`, `--change-pin`): the
/// holder follows the LCD; after the change the new PIN logs the holder in.
#[test]
fn card_check_and_pin_change_at_the_panel() {
    let tmp = TempDir::new("panel-cards");
    let state = tmp.path().join("state");
    let _app = Appliance::start(&state, &["--demo"]);
    let pins = pins(&state);
    eventually(&state, "READY");
    let old = pin_of(&pins, "auditor-1");

    shows(&lcd(&state, &["--card-check"]), &["Insert card", "to check"]);
    shows(&lcd(&state, &["--insert", "auditor-1"]), &["Enter PIN"]);
    shows(&lcd(&state, &["--keys", &format!("{old},OK")]), &["Card OK", "Remove card"]);
    lcd(&state, &["--remove"]);

    shows(&lcd(&state, &["--change-pin"]), &["Insert card", "to change PIN"]);
    shows(&lcd(&state, &["--insert", "auditor-1"]), &["Old PIN"]);
    shows(&lcd(&state, &["--keys", &format!("{old},OK")]), &["New PIN"]);
    let new = wrong(&old);
    shows(&lcd(&state, &["--keys", &format!("{new},OK")]), &["Confirm PIN"]);
    shows(&lcd(&state, &["--keys", &format!("{new},OK")]), &["PIN changed", "Remove card"]);
    lcd(&state, &["--remove"]);

    log_in(&state, &[("auditor-1".to_string(), new)], "--auditor-login", &["auditor-1"]);
    eventually(&state, "AUDITOR LOGGED IN");
    shows(&lcd(&state, &["--remove"]), &["READY", "auditor logged out"]);
}

/// PIN unblock by quorum from the panel's commands: three wrong PINs lock the operator's
/// card, a quorum logs in, `--unblock-pin` asks for the locked card and its holder chooses a
/// new PIN, which then logs the operator in.
#[test]
fn a_locked_card_is_unblocked_by_a_quorum_at_the_panel() {
    let tmp = TempDir::new("panel-unblock");
    let state = tmp.path().join("state");
    let _app = Appliance::start(&state, &["--demo"]);
    let pins = pins(&state);
    eventually(&state, "READY");
    let bad = wrong(&pin_of(&pins, "operator-1"));

    shows(&lcd(&state, &["--card-check"]), &["Insert card", "to check"]);
    shows(&lcd(&state, &["--insert", "operator-1"]), &["Enter PIN"]);
    for _ in 0..2 {
        shows(&lcd(&state, &["--keys", &format!("{bad},OK")]), &["Wrong PIN"]);
        lcd(&state, &["--keys", "OK"]);
    }
    shows(&lcd(&state, &["--keys", &format!("{bad},OK")]), &["Card locked", "Needs unblock"]);
    lcd(&state, &["--remove"]);

    log_in(&state, &pins, "--login", &["admin-1", "admin-2"]);
    eventually(&state, "ADMIN LOGGED IN");
    shows(&lcd(&state, &["--unblock-pin"]), &["Remove card"]);
    shows(&lcd(&state, &["--remove"]), &["Insert locked", "card"]);
    shows(&lcd(&state, &["--insert", "operator-1"]), &["New PIN"]);
    let new = "97531864";
    shows(&lcd(&state, &["--keys", &format!("{new},OK")]), &["Confirm PIN"]);
    shows(&lcd(&state, &["--keys", &format!("{new},OK")]), &["PIN unblocked", "Remove card"]);
    lcd(&state, &["--remove"]);

    log_in(&state, &[("operator-1".to_string(), new.to_string())], "--operator-login", &["operator-1"]);
    eventually(&state, "OPERATOR LOGGED IN");
    shows(&lcd(&state, &["--remove"]), &["READY", "operator logged out"]);
}

/// Zeroize by quorum from the panel's commands: refused without a quorum; with one, the
/// panel asks for a confirmation, and OK returns the appliance to its factory state.
#[test]
fn the_appliance_is_zeroized_by_a_quorum_at_the_panel() {
    let tmp = TempDir::new("panel-zeroize");
    let state = tmp.path().join("state");
    let _app = Appliance::start(&state, &["--demo"]);
    let pins = pins(&state);
    eventually(&state, "READY");

    shows(&lcd(&state, &["--zeroize"]), &["Refused", "No quorum logged in"]);
    lcd(&state, &["--keys", "MENU"]);

    log_in(&state, &pins, "--login", &["admin-1", "admin-2"]);
    eventually(&state, "ADMIN LOGGED IN");
    shows(&lcd(&state, &["--zeroize"]), &["ZEROIZE?", "All keys lost", "for good", "OK=yes CANCEL=no"]);
    shows(&lcd(&state, &["--keys", "OK"]), &["Zeroized", "Remove card"]);
    lcd(&state, &["--remove"]);
    lcd(&state, &["--keys", "MENU"]);
    eventually(&state, "Awaiting init");
}

/// Registering and revoking an application from the panel's commands under a quorum; the
/// audit trail records the revocation, and a second revocation is refused.
#[test]
fn an_application_is_registered_and_revoked_at_the_panel() {
    let tmp = TempDir::new("panel-revoke");
    let state = tmp.path().join("state");
    let _app = Appliance::start(&state, &["--demo"]);
    let pins = pins(&state);
    eventually(&state, "READY");
    let cert = client_cert(&state, "billing");
    let c = cert.to_str().unwrap();

    shows(&refused(&state, &["--revoke-app", c], "no quorum logged in"), &["Refused"]);
    lcd(&state, &["--keys", "MENU"]);
    log_in(&state, &pins, "--login", &["admin-1", "admin-2"]);
    eventually(&state, "ADMIN LOGGED IN");
    shows(&lcd(&state, &["--register-app", c, "--name", "billing"]), &["Application", "registered"]);
    shows(&lcd(&state, &["--revoke-app", c]), &["Application", "revoked"]);
    let audit = String::from_utf8_lossy(&ok(&local(&state, &["audit"]), "audit")).into_owned();
    assert_eq!(audit.matches("ApplicationRevoked").count(), 1, "{audit}");
    lcd(&state, &["--keys", "MENU"]);
    shows(&refused(&state, &["--revoke-app", c], "crypto card refused"), &["Revoke refused"]);
    lcd(&state, &["--keys", "MENU"]);
    shows(&lcd(&state, &["--logout"]), &["Remove card"]);
}
