//! The protocol document as a contract (issue 14): the Python client in `clients/python/`,
//! written from `docs/protocol.md` alone with the standard library, passes its unit tests
//! against the document's example frames and runs its demo against a simulated appliance
//! (TLS 1.3 through Python's `ssl`, SM2 sign / verify, SM4 round trips, status).

use std::path::PathBuf;
use std::process::{Command, Output};

use gmhsm_tests::*;

fn clients_python() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../clients/python")
}

/// `python3 ARGS` (3.11 or later: the client reads its profile with `tomllib`), without
/// writing `__pycache__` into the source tree.
fn python<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    let version = Command::new("python3")
        .args(["-c", "import sys; print(sys.version_info >= (3, 11))"])
        .output()
        .expect("python3 is required for the Python client's tests (scripts/test.sh installs it)");
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), "True", "python3 3.11 or later is required");
    Command::new("python3").args(args).env("PYTHONDONTWRITEBYTECODE", "1").output().expect("run python3")
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn python_client_encodes_the_documents_example_frames() {
    let dir = clients_python();
    let out = python(&[
        "-m".as_ref(),
        "unittest".as_ref(),
        "discover".as_ref(),
        "-s".as_ref(),
        dir.as_os_str(),
        "-v".as_ref(),
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "python unittest failed:\n{stdout}\n{stderr}");
    // unittest reports on stderr: the vector tests ran, and nothing was skipped.
    for test in ["test_sent_frames_encode_to_the_documents_bytes", "test_received_frames_decode_to_their_values"] {
        assert!(stderr.lines().any(|l| l.starts_with(test) && l.ends_with("... ok")), "{test} did not pass: {stderr}");
    }
    assert!(!stderr.contains("skipped"), "{stderr}");
    eprintln!("{stderr}");
}

#[test]
fn python_demo_signs_encrypts_and_reads_status() {
    let tmp = TempDir::new("py");
    let state = tmp.path().join("state");
    let mut app = Appliance::start(&state, &["--demo"]);
    let demo = clients_python().join("demo.py");
    let profile = app.profile();
    let run = |extra: &[&str]| {
        let mut args: Vec<std::ffi::OsString> = vec![demo.clone().into(), "--profile".into(), profile.clone().into()];
        args.extend(extra.iter().map(std::ffi::OsString::from));
        python(&args)
    };

    // The first run generates the keys, the second reuses them and deletes them at the end.
    for (extra, how) in [(&[][..], "generated"), (&["--delete-keys"][..], "reused")] {
        let out = run(extra);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "demo.py {extra:?} failed ({}):\n{stdout}\n{stderr}", out.status);
        assert_eq!(stdout.lines().last(), Some("OK"), "{stdout}");
        assert!(stdout.contains(&format!("key py-demo-sm2 {how}")), "{stdout}");
        assert!(stdout.contains(&format!("key py-demo-sm4 {how}")), "{stdout}");
        assert!(stdout.contains("TLSv1.3"), "{stdout}");
    }
    let listed = String::from_utf8_lossy(&ok(&app.cli(&["key", "list"]), "key list")).into_owned();
    assert!(!listed.contains("py-demo"), "--delete-keys left keys: {listed}");

    // A failure is reported and exits non-zero: a profile naming a port nobody serves.
    let dead = tmp.path().join("dead.toml");
    let text_profile = std::fs::read_to_string(&profile).unwrap();
    let addr_line = text_profile.lines().find(|l| l.starts_with("address = ")).unwrap();
    std::fs::write(&dead, text_profile.replace(addr_line, "address = \"127.0.0.1:1\"")).unwrap();
    let out = python(&[demo.as_os_str(), "--profile".as_ref(), dead.as_os_str()] as &[&std::ffi::OsStr]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(!stdout.contains("OK") && stderr.contains("FAILED"), "{stdout}\n{stderr}");
    assert!(app.stop(), "gmhsm-sim must exit cleanly");
}
