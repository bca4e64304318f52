//! The panel's control socket (Unix, mode 0600; `STATE/panel.sock` under `gmhsm-sim up`):
//! one command per connection, one line of text; the answer is `ok` or `error: WHY`, then the
//! LCD rows. What a command does is the [`Console`]'s: the simulator's moves virtual cards
//! and presses simulated keys; jobs go to [`super::FrontPanel::submit`].
//!
//! Grammar (the bytes come from anyone who can reach the socket: every field is bounded and
//! checked before anything is touched):
//!
//! ```text
//! show | remove | login | logout | operator-login | auditor-login | card-check | change-pin
//! unblock-pin | zeroize
//! revoke-app SHA256HEX                the application's certificate hash
//! insert NAME                         NAME: 1..32 of [A-Za-z0-9_-], STATE/cards/NAME.img
//! keys KEY[,KEY...]                   KEY: digits, OK, CANCEL, MENU, UP, DOWN; at most 64 keys
//! register-app SHA256HEX NAME DOMAINS CAPS [MAX_KEYS MAX_BYTES]
//!                                     DOMAINS, CAPS, MAX_*: decimal u32 (no quota: the default)
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gmhsm_platform::Key;
use gmhsm_proto::{AppQuota, CardRole};

use super::PanelError;

/// Longest command line.
pub const MAX_LINE: usize = 1024;
/// Most keys in one `keys` command.
pub const MAX_KEYS: usize = 64;
const MAX_CLIENTS: usize = 4;
/// Longest card name (`admin-1`, `operator-1`, ...).
pub const MAX_NAME: usize = 32;
/// How long a command that ends a ceremony step may take.
pub const SETTLE: Duration = Duration::from_secs(20);

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Show,
    Insert(String),
    Remove,
    Keys(Vec<Key>),
    Login,
    /// An operator or auditor login.
    RoleLogin(CardRole),
    Logout,
    CheckCard,
    ChangePin,
    UnblockPin,
    Zeroize,
    Revoke {
        cert_sha256: [u8; 32],
    },
    Register {
        cert_sha256: [u8; 32],
        name: String,
        domains: u32,
        caps: u32,
        quota: Option<AppQuota>,
    },
}

/// `1234567,OK` → keys. Digit groups type one key per digit.
pub fn parse_keys(s: &str) -> Result<Vec<Key>, PanelError> {
    let mut keys = Vec::new();
    for word in s.split([',', ' ']).filter(|w| !w.is_empty()) {
        let w = word.to_ascii_uppercase();
        match w.as_str() {
            "OK" => keys.push(Key::Ok),
            "CANCEL" => keys.push(Key::Cancel),
            "MENU" => keys.push(Key::Menu),
            "UP" => keys.push(Key::Up),
            "DOWN" => keys.push(Key::Down),
            d if d.bytes().all(|b| b.is_ascii_digit()) => keys.extend(d.bytes().map(|b| Key::Digit(b - b'0'))),
            _ => return Err(format!("unknown key {:?} (digits, OK, CANCEL, MENU, UP, DOWN)", truncate(word))),
        }
        if keys.len() > MAX_KEYS {
            return Err(format!("at most {MAX_KEYS} keys at once"));
        }
    }
    if keys.is_empty() {
        return Err("keys: name at least one key".into());
    }
    Ok(keys)
}

/// A certificate's SHA-256: 64 hex digits.
fn parse_sha256(hex: &str, verb: &str) -> Result<[u8; 32], String> {
    let mut out = [0u8; 32];
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(format!("{verb}: the certificate hash is 64 hex digits"));
    }
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| format!("{verb}: bad hex"))?;
    }
    Ok(out)
}

fn truncate(s: &str) -> String {
    s.chars().take(24).collect()
}

impl Command {
    pub fn parse(line: &str) -> Result<Command, PanelError> {
        if line.len() > MAX_LINE {
            return Err(format!("command longer than {MAX_LINE} bytes"));
        }
        let line = line.trim();
        let (verb, rest) = line.split_once(' ').map_or((line, ""), |(v, r)| (v, r.trim()));
        let no_args = |c: Command| if rest.is_empty() { Ok(c) } else { Err(format!("{verb} takes no argument")) };
        match verb {
            "show" => no_args(Command::Show),
            "remove" => no_args(Command::Remove),
            "login" => no_args(Command::Login),
            "logout" => no_args(Command::Logout),
            "card-check" => no_args(Command::CheckCard),
            "change-pin" => no_args(Command::ChangePin),
            "unblock-pin" => no_args(Command::UnblockPin),
            "zeroize" => no_args(Command::Zeroize),
            "revoke-app" => parse_sha256(rest, "revoke-app").map(|cert_sha256| Command::Revoke { cert_sha256 }),
            "operator-login" => no_args(Command::RoleLogin(CardRole::Operator)),
            "auditor-login" => no_args(Command::RoleLogin(CardRole::Auditor)),
            "insert" => {
                check_name(rest)?;
                Ok(Command::Insert(rest.to_string()))
            }
            "keys" => parse_keys(rest).map(Command::Keys),
            "register-app" => {
                let f: Vec<&str> = rest.split_whitespace().collect();
                let (fp, name, domains, caps, quota) = match f[..] {
                    [fp, name, domains, caps] => (fp, name, domains, caps, None),
                    [fp, name, domains, caps, keys, bytes] => (fp, name, domains, caps, Some((keys, bytes))),
                    _ => return Err("register-app SHA256HEX NAME DOMAINS CAPS [MAX_KEYS MAX_BYTES]".into()),
                };
                let cert_sha256 = parse_sha256(fp, "register-app")?;
                if name.is_empty() || name.len() > 32 || !name.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err("register-app: a name has 1 to 32 printable characters".into());
                }
                let domains = domains.parse().map_err(|_| "register-app: DOMAINS is a number")?;
                let caps = caps.parse().map_err(|_| "register-app: CAPS is a number")?;
                let quota = match quota {
                    None => None,
                    Some((keys, bytes)) => Some(AppQuota {
                        max_keys: keys.parse().map_err(|_| "register-app: MAX_KEYS is a number")?,
                        max_bytes: bytes.parse().map_err(|_| "register-app: MAX_BYTES is a number")?,
                    }),
                };
                Ok(Command::Register { cert_sha256, name: name.into(), domains, caps, quota })
            }
            "" => Err("empty command".into()),
            other => Err(format!(
                "unknown command {:?} (show, insert, remove, keys, login, operator-login, auditor-login, logout, \
                 card-check, change-pin, unblock-pin, zeroize, register-app, revoke-app)",
                truncate(other)
            )),
        }
    }
}

/// Card names: 1 to 32 of `[A-Za-z0-9_-]`, so a name never leaves the cards' folder.
pub fn check_name(name: &str) -> Result<(), PanelError> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!("a card name has 1 to {MAX_NAME} characters"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err("a card name has only letters, digits, '-' and '_'".into());
    }
    Ok(())
}

/// Whoever acts on the panel for the control socket.
pub trait Console: Clone + Send + 'static {
    /// Do `c` and wait until the panel has reacted.
    fn execute(&self, c: Command) -> Result<(), PanelError>;
    /// The LCD as shown now, each row padded to the panel's width.
    fn screen(&self) -> Vec<String>;
}

/// Serve the control socket at `path` from a thread.
pub fn serve<C: Console>(panel: C, path: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let clients = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new().name("panel-control".into()).spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut stream) = conn else { continue };
            if clients.load(Ordering::Relaxed) >= MAX_CLIENTS {
                let _ = stream.write_all(b"error: the panel is busy, try again\n");
                continue;
            }
            clients.fetch_add(1, Ordering::Relaxed);
            let (panel, clients) = (panel.clone(), clients.clone());
            let _ = std::thread::Builder::new().name("panel-client".into()).spawn(move || {
                let _ = client(&panel, stream);
                clients.fetch_sub(1, Ordering::Relaxed);
            });
        }
    })?;
    Ok(())
}

fn client<C: Console>(panel: &C, mut stream: UnixStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    let r = BufReader::new((&stream).take(MAX_LINE as u64 + 1)).read_line(&mut line);
    let result = match r {
        Err(e) => Err(format!("reading the command: {e}")),
        Ok(_) if line.len() > MAX_LINE => Err(format!("command longer than {MAX_LINE} bytes")),
        Ok(_) => Command::parse(&line).and_then(|c| panel.execute(c)),
    };
    let mut out = match result {
        Ok(()) => "ok\n".to_string(),
        Err(e) => format!("error: {}\n", e.replace('\n', " ")),
    };
    for row in panel.screen() {
        out.push_str(&row);
        out.push('\n');
    }
    stream.write_all(out.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_commands_are_refused_clearly() {
        assert_eq!(parse_keys("12,ok,Cancel").unwrap(), [Key::Digit(1), Key::Digit(2), Key::Ok, Key::Cancel]);
        assert!(parse_keys("12,PANIC").unwrap_err().contains("unknown key"));
        assert!(parse_keys(&"1".repeat(65)).unwrap_err().contains("at most"));
        assert!(parse_keys("").is_err());
        assert_eq!(Command::parse("insert admin-1\n").unwrap(), Command::Insert("admin-1".into()));
        assert!(Command::parse("insert ../../etc/passwd").is_err());
        assert!(Command::parse("insert").is_err());
        assert!(Command::parse(&format!("insert {}", "a".repeat(33))).is_err());
        assert!(Command::parse("show me").is_err());
        assert_eq!(Command::parse("operator-login").unwrap(), Command::RoleLogin(CardRole::Operator));
        assert_eq!(Command::parse("auditor-login\n").unwrap(), Command::RoleLogin(CardRole::Auditor));
        assert!(Command::parse("auditor-login now").is_err());
        assert!(Command::parse("format c:").unwrap_err().contains("unknown command"));
        assert!(Command::parse(&"x".repeat(2000)).unwrap_err().contains("longer"));
        assert!(Command::parse("register-app zz 1 2 3").is_err());
        let fp = "ab".repeat(32);
        assert!(matches!(
            Command::parse(&format!("register-app {fp} payroll 4 1")),
            Ok(Command::Register { domains: 4, caps: 1, quota: None, .. })
        ));
        assert!(matches!(
            Command::parse(&format!("register-app {fp} payroll 4 1 10 4096")),
            Ok(Command::Register { quota: Some(AppQuota { max_keys: 10, max_bytes: 4096 }), .. })
        ));
        assert!(Command::parse(&format!("register-app {fp} payroll 4 1 10")).is_err());
        assert!(Command::parse(&format!("register-app {fp} payroll 4 1 ten 4096")).is_err());
    }
}
