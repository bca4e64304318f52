//! The real `gmhsmd` binary, started from a configuration file, hardens itself and still
//! serves: checked from outside through `/proc/<pid>/status` and `/proc/<pid>/limits`.
//!
//! Run as root (as CI does), the daemon drops to `nobody`; run as another user, it keeps
//! that user and the privilege checks are skipped with a note. The seccomp mode is `kill`
//! here, so a system call missing from the allow-list kills the daemon and fails the test
//! (`GMHSMD_TEST_SECCOMP=off` runs the same scenario without the filter, e.g. under strace
//! to refresh the list). The first daemon busy-polls, so its spinning (`epoll_wait` with a
//! zero timeout, `sched_yield`) runs under the filter too.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use common::*;
use gmhsm_client::Client;
use gmhsm_proto::{Deframer, PROTOCOL_VERSION, Request, Response};

/// Kills the daemon if the test fails before stopping it.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The value of `key:` in /proc/<pid>/status.
fn status_field(pid: u32, key: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
        .trim()
        .to_owned()
}

/// Start gmhsmd on `config`; its log lines arrive on the receiver.
fn spawn_gmhsmd(config: &std::path::Path) -> (Daemon, mpsc::Receiver<String>) {
    let child = Command::new(env!("CARGO_BIN_EXE_gmhsmd"))
        .arg("--config")
        .arg(config)
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gmhsmd");
    let mut daemon = Daemon(child);
    let stderr = daemon.0.stderr.take().expect("stderr");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (daemon, lines)
}

fn wait_for(lines: &mpsc::Receiver<String>, log: &mut Vec<String>, needle: &str) -> String {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no `{needle}` in the daemon's log:\n{}", log.join("\n")));
        log.push(line.clone());
        if line.contains(needle) {
            return line;
        }
    }
}

#[test]
fn gmhsmd_hardens_itself_and_still_serves() {
    let pki = make_pki();
    let dir = &pki.dir;
    let card = InProcessCard::start();
    std::fs::write(dir.join("server.pem"), &pki.server_pem).expect("write");
    std::fs::write(dir.join("server.key"), &pki.server_key_pem).expect("write");
    std::fs::write(dir.join("client-ca.pem"), &pki.ca_pem).expect("write");
    let root = nix::unistd::geteuid().is_root();
    let uid = nix::unistd::getuid().as_raw();
    let seccomp = std::env::var("GMHSMD_TEST_SECCOMP").unwrap_or_else(|_| "kill".into());
    // The explicit file key, and the application admitted by its fingerprint.
    let fp: String = sha2::Digest::finalize(sha2::Digest::chain_update(sha2::Sha256::default(), &pki.client_der))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(dir.join("applications"), format!("{fp}\n")).expect("write");
    let config = format!(
        "listen = \"127.0.0.1:0\"\ntls_key = \"file\"\ncert = \"{d}/server.pem\"\nkey = \"{d}/server.key\"\n\
         applications = \"{d}/applications\"\n\
         client_ca = \"{d}/client-ca.pem\"\ncard_socket = \"{card}\"\n\
         [local]\npath = \"{d}/gmhsmd.sock\"\nallowed_uids = [{uid}]\n\
         [tuning]\nbusy_poll_us = 1000\n\
         [harden]\nuser = \"nobody\"\nseccomp = \"{seccomp}\"\n",
        d = dir.display(),
        card = card.socket().display()
    );
    std::fs::write(dir.join("gmhsmd.toml"), config).expect("write");

    let (mut daemon, lines) = spawn_gmhsmd(&dir.join("gmhsmd.toml"));
    let pid = daemon.0.id();
    let mut log = Vec::new();
    let harden_line = wait_for(&lines, &mut log, "event=harden");
    let listen = wait_for(&lines, &mut log, "event=listen addr=");
    let addr = listen.rsplit("addr=").next().expect("addr").trim().parse().expect("addr");

    assert_eq!(status_field(pid, "NoNewPrivs"), "1");
    assert_eq!(status_field(pid, "Seccomp"), if seccomp == "off" { "0" } else { "2" });
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let core = limits.lines().find(|l| l.starts_with("Max core file size")).expect("core limit");
    assert_eq!(core.split_whitespace().nth(4), Some("0"), "{core}");
    assert_eq!(core.split_whitespace().nth(5), Some("0"), "{core}");
    let vmlck: u64 = status_field(pid, "VmLck").trim_end_matches("kB").trim().parse().expect("VmLck");
    assert!(
        vmlck > 0 || harden_line.contains("mlock=failed"),
        "memory neither locked nor reported: VmLck {vmlck} kB, {harden_line}"
    );
    let uids: Vec<u32> = status_field(pid, "Uid").split_whitespace().map(|u| u.parse().expect("uid")).collect();
    let gids: Vec<u32> = status_field(pid, "Gid").split_whitespace().map(|g| g.parse().expect("gid")).collect();
    if root {
        assert!(uids.iter().all(|&u| u != 0), "Uid {uids:?}");
        assert!(gids.iter().all(|&g| g != 0), "Gid {gids:?}");
        assert_eq!(status_field(pid, "Groups"), "", "supplementary groups dropped");
    } else {
        eprintln!("note: not root, so the privilege drop is not exercised");
    }
    // Not dumpable: the kernel makes /proc/<pid>/* owned by root instead of the process's
    // user (for a dumpable process they belong to its effective uid, which is not 0 here).
    let owner = std::fs::metadata(format!("/proc/{pid}/environ")).expect("stat").uid();
    assert_ne!(uids[1], 0, "the daemon does not run as root");
    assert_eq!(owner, 0, "/proc/{pid}/environ owned by root: not dumpable");

    // Still serving: TLS, then a reload, then TLS again, then the local socket.
    let profile = pki.profile("client", "client", addr);
    Client::connect(&profile).and_then(|mut c| c.ping()).expect("pong over TLS");
    kill(Pid::from_raw(pid as i32), Signal::SIGHUP).expect("SIGHUP");
    wait_for(&lines, &mut log, "event=reload what=client_ca");
    Client::connect(&profile).and_then(|mut c| c.ping()).expect("pong after reload");
    let mut local = UnixStream::connect(dir.join("gmhsmd.sock")).expect("local connect");
    local.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    local.write_all(&client_frame(PROTOCOL_VERSION, 3, Request::Ping)).expect("write");
    let answer = read_frame(&mut local, &mut Deframer::new());
    assert_eq!(answer.result, Ok(Response::Pong));
    drop(local);

    kill(Pid::from_raw(pid as i32), Signal::SIGTERM).expect("SIGTERM");
    wait_for(&lines, &mut log, "event=stopped");
    let exit = daemon.0.wait().expect("wait");
    assert!(exit.success(), "gmhsmd exited with {exit:?}; log:\n{}", log.join("\n"));
    let _ = std::fs::remove_dir_all(dir);
}

/// The card-held TLS key's path (its own card connection, `setsockopt` for its deadline, the
/// handshake workers) works under the seccomp filter in `kill` mode.
#[test]
fn gmhsmd_signs_handshakes_through_the_card_once_hardened() {
    use common::keycard::KeyCard;
    let pki = make_pki();
    let dir = &pki.dir;
    let card = KeyCard::start();
    let cert_pem = card.p256_key(&pki.ca);
    std::fs::write(dir.join("tls-p256.pem"), cert_pem).expect("write");
    std::fs::write(dir.join("client-ca.pem"), &pki.ca_pem).expect("write");
    let seccomp = std::env::var("GMHSMD_TEST_SECCOMP").unwrap_or_else(|_| "kill".into());
    // No `cert` / `key` files exist: the card key (the default) replaces them.
    let config = format!(
        "listen = \"127.0.0.1:0\"\ncert = \"{d}/absent.pem\"\nkey = \"{d}/absent.key\"\n\
         client_ca = \"{d}/client-ca.pem\"\ncard_socket = \"{card}\"\n\
         admit_any_client_certificate = true\n\
         [[card_tls_key]]\nlabel = \"tls:p256\"\ncert = \"{d}/tls-p256.pem\"\n\
         scheme = \"ecdsa-p256\"\n\
         [local]\nenabled = false\n[harden]\nuser = \"nobody\"\nseccomp = \"{seccomp}\"\n",
        d = dir.display(),
        card = card.socket().display()
    );
    std::fs::write(dir.join("gmhsmd.toml"), config).expect("write");
    let (mut daemon, lines) = spawn_gmhsmd(&dir.join("gmhsmd.toml"));
    let pid = daemon.0.id();
    let mut log = Vec::new();
    wait_for(&lines, &mut log, "event=harden");
    let listen = wait_for(&lines, &mut log, "event=listen addr=");
    let addr = listen.rsplit("addr=").next().expect("addr").trim().parse().expect("addr");
    assert_eq!(status_field(pid, "Seccomp"), if seccomp == "off" { "0" } else { "2" });

    let profile = pki.profile("client", "client", addr);
    for _ in 0..2 {
        if let Err(e) = Client::connect(&profile).and_then(|mut c| c.ping()) {
            std::thread::sleep(Duration::from_millis(200));
            log.extend(lines.try_iter());
            let exit = daemon.0.try_wait().expect("try_wait");
            panic!("no pong over TLS with the card's key: {e}; daemon {exit:?}; log:\n{}", log.join("\n"));
        }
    }
    assert!(card.signs().len() >= 2, "{:?}", card.signs());

    kill(Pid::from_raw(pid as i32), Signal::SIGTERM).expect("SIGTERM");
    wait_for(&lines, &mut log, "event=stopped");
    let exit = daemon.0.wait().expect("wait");
    assert!(exit.success(), "gmhsmd exited with {exit:?}; log:\n{}", log.join("\n"));
    let _ = std::fs::remove_dir_all(dir);
}
