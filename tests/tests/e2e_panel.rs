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
    let child = Command::new(bin("gmhsm"))
        .arg("--socket")
        .arg(state.join("local.sock"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    shows(&eventually(state, "Approve tool"), &["Approve tool"]);
    lcd(state, &["--keys", "OK"]);
    child.wait_with_output().unwrap()
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
