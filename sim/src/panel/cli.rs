//! `gmhsm-sim panel`: look at the simulated appliance's front panel and act on it through its
//! control socket — one action from the command line, or a script of them.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gmhsm_proto::Capabilities;

/// Biggest script accepted.
const MAX_SCRIPT: u64 = 64 * 1024;
const MAX_SCRIPT_LINES: usize = 1000;
/// Longest answer read from the socket.
const MAX_ANSWER: u64 = 4096;

/// One thing to do at the panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A control-socket command, sent as is (`show`, `insert NAME`, `keys ...`, ...).
    Send(String),
    /// Wait until some row of the LCD contains the text.
    WaitLcd(String),
}

/// What the panel answered.
pub struct Answer {
    pub error: Option<String>,
    pub rows: Vec<String>,
}

/// Send one command line to the panel of the appliance in `state`.
pub fn send(state: &Path, line: &str) -> anyhow::Result<Answer> {
    let path = state.join("panel.sock");
    let mut s = UnixStream::connect(&path)
        .with_context(|| format!("{}: is `gmhsm-sim up --state {}` running?", path.display(), state.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    s.write_all(line.as_bytes())?;
    s.write_all(b"\n")?;
    let mut text = String::new();
    s.take(MAX_ANSWER).read_to_string(&mut text)?;
    let mut lines = text.lines();
    let error = match lines.next() {
        Some("ok") => None,
        Some(e) => Some(e.strip_prefix("error: ").unwrap_or(e).to_string()),
        None => bail!("the panel closed the connection without an answer"),
    };
    Ok(Answer { error, rows: lines.map(str::to_string).collect() })
}

/// The LCD in a box.
pub fn framed(rows: &[String]) -> String {
    let width = rows.iter().map(|r| r.chars().count()).max().unwrap_or(0);
    let edge = format!("+{}+\n", "-".repeat(width));
    let mut out = edge.clone();
    for r in rows {
        out.push_str(&format!("|{r:width$}|\n"));
    }
    out.push_str(&edge);
    out
}

/// A script: one action per line; blank lines and `#` comments ignored.
pub fn parse_script(text: &str) -> anyhow::Result<Vec<Action>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if out.len() >= MAX_SCRIPT_LINES {
            bail!("a script has at most {MAX_SCRIPT_LINES} commands");
        }
        if line.len() > super::control::MAX_LINE {
            bail!("line {}: longer than {} bytes", n + 1, super::control::MAX_LINE);
        }
        out.push(match line.split_once(' ') {
            Some(("wait-lcd", text)) => Action::WaitLcd(text.trim().to_string()),
            _ if line == "wait-lcd" => bail!("line {}: wait-lcd TEXT", n + 1),
            _ => Action::Send(line.to_string()),
        });
    }
    Ok(out)
}

pub fn read_script(path: &Path) -> anyhow::Result<Vec<Action>> {
    let f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut text = String::new();
    f.take(MAX_SCRIPT + 1).read_to_string(&mut text).with_context(|| format!("{}", path.display()))?;
    if text.len() as u64 > MAX_SCRIPT {
        bail!("{}: a script is at most {MAX_SCRIPT} bytes", path.display());
    }
    parse_script(&text).with_context(|| format!("{}", path.display()))
}

/// Run `actions` in order, printing the LCD after each (with the command when `echo`).
/// Stops at the first error.
pub fn run(state: &Path, actions: &[Action], echo: bool, wait: Duration) -> anyhow::Result<()> {
    for a in actions {
        if echo {
            match a {
                Action::Send(l) => println!("> {l}"),
                Action::WaitLcd(t) => println!("> wait-lcd {t}"),
            }
        }
        let answer = match a {
            Action::Send(l) => send(state, l)?,
            Action::WaitLcd(t) => wait_lcd(state, t, wait)?,
        };
        print!("{}", framed(&answer.rows));
        std::io::stdout().flush()?;
        if let Some(e) = answer.error {
            bail!("{e}");
        }
    }
    Ok(())
}

fn wait_lcd(state: &Path, text: &str, wait: Duration) -> anyhow::Result<Answer> {
    if text.is_empty() {
        bail!("wait-lcd TEXT");
    }
    let deadline = Instant::now() + wait;
    loop {
        let a = send(state, "show")?;
        if a.rows.iter().any(|r| r.contains(text)) {
            return Ok(a);
        }
        if Instant::now() > deadline {
            return Ok(Answer {
                error: Some(format!("the panel did not show {text:?} within {} s", wait.as_secs())),
                rows: a.rows,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `register-app SHA256 NAME DOMAINS CAPS [MAX_KEYS MAX_BYTES]` for the certificate `cert`
/// (PEM).
pub fn register_line(
    cert: &Path,
    name: &str,
    domains: u32,
    caps: &str,
    quota: Option<gmhsm_proto::AppQuota>,
) -> anyhow::Result<String> {
    let fp = cert_sha256_hex(cert)?;
    let quota = quota.map(|q| format!(" {} {}", q.max_keys, q.max_bytes)).unwrap_or_default();
    Ok(format!("register-app {fp} {name} {domains} {}{quota}", parse_caps(caps)?.0))
}

/// The SHA-256 of the certificate (PEM) at `cert`, in hex: how the card names an application.
pub fn cert_sha256_hex(cert: &Path) -> anyhow::Result<String> {
    use rustls_pki_types::pem::PemObject;
    use sha2::Digest;
    let der = rustls_pki_types::CertificateDer::from_pem_file(cert)
        .map_err(|e| anyhow::anyhow!("{}: {e}", cert.display()))?;
    Ok(sha2::Sha256::digest(der.as_ref()).iter().map(|b| format!("{b:02x}")).collect())
}

/// `sign,verify,...` (or `all`) to a capability set.
pub fn parse_caps(s: &str) -> anyhow::Result<Capabilities> {
    if s.split(',').any(|w| w.trim() == "all") {
        return Ok(Capabilities::ALL);
    }
    Capabilities::parse_list(s).map_err(|other| anyhow::anyhow!("unknown capability {other:?}"))
}

/// The command-line form: at most one action flag, or a script.
#[derive(Debug, Default, clap::Args)]
pub struct PanelArgs {
    #[arg(long)]
    pub state: PathBuf,
    /// Insert the card STATE/cards/NAME.img.
    #[arg(long, value_name = "NAME", group = "action")]
    pub insert: Option<String>,
    /// Take the card out of the reader.
    #[arg(long, group = "action")]
    pub remove: bool,
    /// Press keys: digits, OK, CANCEL, MENU, UP, DOWN, comma-separated (`12345678,OK`).
    #[arg(long, value_name = "KEYS", group = "action")]
    pub keys: Option<String>,
    /// Start a quorum login (key management).
    #[arg(long, group = "action")]
    pub login: bool,
    /// Start an operator login (one operator card: service stop / start, self-test).
    #[arg(long, group = "action")]
    pub operator_login: bool,
    /// Start an auditor login (one auditor card: approves audit export).
    #[arg(long, group = "action")]
    pub auditor_login: bool,
    /// End the quorum's authority or the operator's / auditor's login (then take the
    /// last card out).
    #[arg(long, group = "action")]
    pub logout: bool,
    /// Check a card: its PIN and a trial login on a session of its own (changes nothing).
    #[arg(long, group = "action")]
    pub card_check: bool,
    /// Change a card's PIN at the panel (old PIN, then the new one twice).
    #[arg(long, group = "action")]
    pub change_pin: bool,
    /// Unblock a locked card under the quorum logged in at the panel (the holder
    /// chooses a new PIN; the quorum's authority ends with it).
    #[arg(long, group = "action")]
    pub unblock_pin: bool,
    /// Zeroize the appliance under the quorum logged in at the panel, once the people
    /// at the rack confirm it on the panel (OK); every key is lost. The authority ends.
    #[arg(long, group = "action")]
    pub zeroize: bool,
    /// Revoke the application whose certificate (PEM) this is, under the quorum's
    /// authority held at the panel.
    #[arg(long, value_name = "CERT", group = "action")]
    pub revoke_app: Option<PathBuf>,
    /// Register the application whose certificate (PEM) this is, under the quorum's
    /// authority held at the panel.
    #[arg(long, value_name = "CERT", group = "action", requires = "name")]
    pub register_app: Option<PathBuf>,
    #[arg(long)]
    pub name: Option<String>,
    /// Domain bit mask for --register-app.
    #[arg(long, default_value_t = 1)]
    pub domains: u32,
    /// Capabilities for --register-app: sign,verify,encrypt,... or all.
    #[arg(long, default_value = "sign,verify")]
    pub caps: String,
    /// Most keys the application of --register-app may own in the card (default: the
    /// card's, 1024).
    #[arg(long)]
    pub max_keys: Option<u32>,
    /// Most bytes of the card's store its keys may take (default: the card's, 1 MiB).
    #[arg(long)]
    pub max_bytes: Option<u32>,
    /// Run a script: one command a line (insert NAME, remove, keys K,..., login,
    /// operator-login, auditor-login, logout, card-check, change-pin, unblock-pin, zeroize, wait-lcd TEXT,
    /// show); the LCD is printed after each.
    #[arg(long, value_name = "FILE", group = "action")]
    pub script: Option<PathBuf>,
    /// How long wait-lcd waits, in seconds.
    #[arg(long = "wait", default_value_t = 30)]
    pub wait_secs: u64,
}

/// `gmhsm-sim panel`.
pub fn main(a: &PanelArgs) -> anyhow::Result<()> {
    let wait = Duration::from_secs(a.wait_secs);
    if let Some(script) = &a.script {
        return run(&a.state, &read_script(script)?, true, wait);
    }
    let line = if let Some(n) = &a.insert {
        format!("insert {n}")
    } else if a.remove {
        "remove".into()
    } else if let Some(k) = &a.keys {
        format!("keys {k}")
    } else if a.login {
        "login".into()
    } else if a.operator_login {
        "operator-login".into()
    } else if a.auditor_login {
        "auditor-login".into()
    } else if a.logout {
        "logout".into()
    } else if a.card_check {
        "card-check".into()
    } else if a.change_pin {
        "change-pin".into()
    } else if a.unblock_pin {
        "unblock-pin".into()
    } else if a.zeroize {
        "zeroize".into()
    } else if let Some(cert) = &a.revoke_app {
        format!("revoke-app {}", cert_sha256_hex(cert)?)
    } else if let Some(cert) = &a.register_app {
        let name = a.name.as_deref().context("--register-app needs --name")?;
        let quota = gmhsm_proto::AppQuota::from_options(a.max_keys, a.max_bytes);
        register_line(cert, name, a.domains, &a.caps, quota)?
    } else {
        "show".into()
    };
    run(&a.state, &[Action::Send(line)], false, wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_and_frames() {
        let s = parse_script("# log in\ninsert admin-1\n\nkeys 12345678,OK\nwait-lcd Remove card\nshow\n").unwrap();
        assert_eq!(
            s,
            [
                Action::Send("insert admin-1".into()),
                Action::Send("keys 12345678,OK".into()),
                Action::WaitLcd("Remove card".into()),
                Action::Send("show".into())
            ]
        );
        assert!(parse_script("wait-lcd").is_err());
        assert!(parse_script(&"show\n".repeat(1001)).is_err());
        let f = framed(&["Enter PIN".into(), "PIN: **".into()]);
        assert_eq!(f, "+---------+\n|Enter PIN|\n|PIN: **  |\n+---------+\n");
    }
}
