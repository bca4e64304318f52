//! Which client certificates the daemon admits: nobody by default, the certificates an
//! applications file lists, or (an explicit choice) every certificate the client CA issued.
//!
//! The file is read at bind, on reload (SIGHUP), and again whenever a certificate it does not
//! list connects and the file changed since it was read (its inode, size or modification time
//! differ): an application added to the file is admitted at its next connection without a
//! signal. A file that does not parse keeps the list in force (and is logged).

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use log::{error, info};

/// A SHA-256 certificate fingerprint.
pub type Fingerprint = [u8; 32];

/// Where the admitted certificates come from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Applications {
    /// Nobody: a certificate of the client CA is not enough (the default, so that a daemon
    /// configured without a list serves no one rather than everyone).
    #[default]
    Nobody,
    /// The certificates whose SHA-256 fingerprints this file lists.
    File(PathBuf),
    /// Every certificate the client CA issued: for a CA dedicated to this appliance, and tests.
    AnyCertificate,
}

/// What identifies one version of the file.
type Stamp = (u64, u64, i64, i64);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

/// The admission list in force.
#[derive(Debug)]
pub struct Admission {
    source: Applications,
    /// `None`: every certificate.
    allowed: Option<HashSet<Fingerprint>>,
    stamp: Option<Stamp>,
}

impl Admission {
    /// Admit nobody.
    pub fn nobody() -> Admission {
        Admission { source: Applications::Nobody, allowed: Some(HashSet::new()), stamp: None }
    }

    /// Load the list from `source`; an unreadable or malformed file is an error.
    pub fn load(source: Applications) -> anyhow::Result<Admission> {
        let mut a = Admission { source, ..Admission::nobody() };
        a.read()?;
        Ok(a)
    }

    /// Read the source again (reload); on error the list in force stays.
    pub fn reload(&mut self) -> anyhow::Result<()> {
        self.read()?;
        if let (Applications::File(path), Some(a)) = (&self.source, &self.allowed) {
            info!("event=reload what=applications path={} count={}", path.display(), a.len());
        }
        Ok(())
    }

    /// Is `fp` admitted? A miss re-reads the file if it changed since it was read.
    pub fn admits(&mut self, fp: &Fingerprint) -> bool {
        if self.listed(fp) {
            return true;
        }
        let Applications::File(path) = &self.source else { return false };
        let path = path.clone();
        if stamp(&path) == self.stamp {
            return false;
        }
        if let Err(e) = self.reload() {
            error!("event=reload_failed what=applications error=\"{e:#}\"");
            // Not again until the file changes once more.
            self.stamp = stamp(&path);
        }
        self.listed(fp)
    }

    fn listed(&self, fp: &Fingerprint) -> bool {
        self.allowed.as_ref().is_none_or(|a| a.contains(fp))
    }

    fn read(&mut self) -> anyhow::Result<()> {
        match &self.source {
            Applications::Nobody => self.allowed = Some(HashSet::new()),
            Applications::AnyCertificate => self.allowed = None,
            Applications::File(path) => {
                let before = stamp(path);
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading applications list {}", path.display()))?;
                let set = parse(&text).with_context(|| format!("applications list {}", path.display()))?;
                self.allowed = Some(set);
                self.stamp = before;
            }
        }
        Ok(())
    }
}

/// Parse an applications file: one hex SHA-256 fingerprint per line (colons allowed),
/// blank lines and `#` comments ignored. Any other text, ASCII or not, is an error naming
/// the line.
pub fn parse(text: &str) -> anyhow::Result<HashSet<Fingerprint>> {
    let mut set = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let digits: Vec<u8> = line.bytes().filter(|b| *b != b':').collect();
        if digits.len() != 64 || !digits.iter().all(u8::is_ascii_hexdigit) {
            bail!("line {}: a fingerprint is 64 hex digits", i + 1);
        }
        let mut fp = [0u8; 32];
        for (b, pair) in fp.iter_mut().zip(digits.chunks_exact(2)) {
            *b = (hex_value(pair[0]) << 4) | hex_value(pair[1]);
        }
        set.insert(fp);
    }
    Ok(set)
}

/// The value of an ASCII hex digit (checked by the caller).
fn hex_value(d: u8) -> u8 {
    match d {
        b'0'..=b'9' => d - b'0',
        b'a'..=b'f' => d - b'a' + 10,
        _ => d.to_ascii_uppercase().wrapping_sub(b'A').wrapping_add(10),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_with_colons_comments_and_either_case() {
        let text = format!("# x\n\n{}  # app\n{}\n", "0a".repeat(32), "AB:".repeat(31) + "AB");
        let set = parse(&text).expect("parses");
        assert!(set.contains(&[0x0a; 32]) && set.contains(&[0xab; 32]) && set.len() == 2);
        assert!(parse("abcd").is_err());
        assert!(parse(&"0g".repeat(32)).is_err());
    }

    /// Guards finding 9: the parser sliced its input by bytes, so a multibyte character that
    /// brought a line to 64 bytes panicked the daemon at load or reload. Every multibyte
    /// character at every position is now an error naming the line, never a panic.
    #[test]
    fn non_ascii_input_is_an_error_at_every_position() {
        for ch in ["é", "€", "😀", "中"] {
            for len in [62usize, 63, 64, 65] {
                for at in 0..=len {
                    let mut line: String = "a".repeat(len);
                    let at = at.min(line.len());
                    line.insert_str(at, ch);
                    let text = format!("# ok\n{line}\n");
                    let r = std::panic::catch_unwind(|| parse(&text));
                    let err = r.unwrap_or_else(|_| panic!("parser panicked on {text:?}"));
                    assert!(err.is_err(), "{text:?} parsed");
                    assert!(format!("{:#}", err.unwrap_err()).contains("line 2"));
                }
            }
        }
    }

    #[test]
    fn nobody_by_default_everyone_only_when_asked() {
        let mut nobody = Admission::load(Applications::default()).expect("loads");
        assert!(!nobody.admits(&[1; 32]));
        let mut any = Admission::load(Applications::AnyCertificate).expect("loads");
        assert!(any.admits(&[1; 32]));
    }

    /// A certificate added to the file is admitted at its next connection, no reload needed.
    #[test]
    fn a_changed_file_is_read_again_on_a_miss() {
        let dir = std::env::temp_dir().join(format!("gmhsmd-apps-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("applications");
        std::fs::write(&path, format!("{}\n", "01".repeat(32))).expect("write");
        let mut a = Admission::load(Applications::File(path.clone())).expect("loads");
        assert!(a.admits(&[1; 32]) && !a.admits(&[2; 32]));
        std::fs::write(&path, format!("{}\n{}\n", "01".repeat(32), "02".repeat(32) + "ignored-by-length")).unwrap();
        assert!(!a.admits(&[2; 32]), "a malformed file keeps the list in force");
        assert!(a.admits(&[1; 32]));
        std::fs::write(&path, format!("{}\n{}\n", "01".repeat(32), "02".repeat(32))).expect("write");
        assert!(a.admits(&[2; 32]), "the fixed file is read again");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
