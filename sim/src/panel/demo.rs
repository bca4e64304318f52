//! The demo's cards and the people who use them: `gmhsm-sim up --demo` creates blank virtual
//! cards in `STATE/cards/`, draws a random 8-digit PIN for each, prints them once and writes
//! `STATE/cards/PINS.txt` (mode 0600: for scripts; a real appliance has no such file), then
//! runs the init ceremony and a quorum login at the front panel exactly as people would:
//! inserting each card when the LCD asks for it and typing its PIN on the keypad.

use std::path::Path;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gmhsm_platform::Key;
use gmhsm_proto::{Capabilities, QuorumPolicy};
use gmhsm_provisioning::InitPlan;
use zeroize::Zeroizing;

use super::{FrontPanel, Job};
use crate::ceremony::LcdView;
use crate::pki::write_atomic;

/// How long the demo's people wait for any one screen.
const STEP: Duration = Duration::from_secs(60);

/// One demo card and its PIN.
pub struct DemoCard {
    pub name: String,
    /// "admin", "operator" or "auditor".
    pub role: &'static str,
    pub index: u8,
    pub of: u8,
    pub pin: Zeroizing<String>,
}

/// The demo's card set: `n` administrator cards (quorum `k`), one operator, one auditor.
pub struct DemoCards {
    pub policy: QuorumPolicy,
    pub cards: Vec<DemoCard>,
}

/// A uniformly random 8-digit PIN from the OS.
fn random_pin() -> anyhow::Result<Zeroizing<String>> {
    loop {
        let v = getrandom::u32().map_err(|e| anyhow::anyhow!("randomness: {e}"))?;
        // 4_200_000_000 is a multiple of 10^8: no modulo bias.
        if v < 4_200_000_000 {
            return Ok(Zeroizing::new(format!("{:08}", v % 100_000_000)));
        }
    }
}

impl DemoCards {
    /// Fresh cards in `dir` (emptied first: cards of an aborted ceremony cannot be reused).
    pub fn create(dir: &Path, n: u8, k: u8) -> anyhow::Result<DemoCards> {
        let policy = QuorumPolicy::new(n, k);
        policy
            .check()
            .map_err(|e| anyhow::anyhow!("--cards {n} --quorum {k}: {e:?} (need 2 <= quorum < cards <= 32)"))?;
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir)?;
        let mut cards = Vec::new();
        for (role, of) in [("admin", n), ("operator", 1), ("auditor", 1)] {
            for i in 1..=of {
                cards.push(DemoCard { name: format!("{role}-{i}"), role, index: i, of, pin: random_pin()? });
            }
        }
        let mut text = String::from(
            "# gmhsm-sim demo cards and their PINs (the simulator's convenience for scripts:\n\
             # a real appliance has no such file; each holder chooses and keeps their own PIN)\n",
        );
        for c in &cards {
            text.push_str(&format!("{} {}\n", c.name, c.pin.as_str()));
        }
        write_atomic(&dir.join("PINS.txt"), text.as_bytes(), 0o600)?;
        Ok(DemoCards { policy, cards })
    }

    /// The PINs, printed once for the person who started the demo.
    pub fn announce(&self, dir: &Path) {
        println!(
            "Demo cards (quorum {} of {} administrator cards) and their PINs, also in {}:",
            self.policy.k,
            self.policy.n,
            dir.join("PINS.txt").display()
        );
        for c in &self.cards {
            println!("  {:<12} PIN {}", c.name, c.pin.as_str());
        }
        println!("Try a quorum login: gmhsm-sim panel --state {} --login", dir.parent().unwrap_or(dir).display());
    }

    fn admins(&self) -> impl Iterator<Item = &DemoCard> {
        self.cards.iter().filter(|c| c.role == "admin")
    }
}

/// Read `STATE/cards/PINS.txt`: (card name, PIN) pairs.
pub fn read_pins(path: &Path) -> anyhow::Result<Vec<(String, Zeroizing<String>)>> {
    let text = Zeroizing::new(std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?);
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, p)| (n.to_string(), Zeroizing::new(p.trim().to_string())))
        .collect())
}

/// The demo's people: they watch the LCD and act on what it asks.
struct People<'a> {
    panel: &'a FrontPanel,
    lcd: LcdView,
    result: Receiver<Result<(), String>>,
}

impl People<'_> {
    /// Wait for a screen whose first rows are `rows`; fails early if the ceremony stopped.
    fn see(&mut self, rows: &[&str]) -> anyhow::Result<()> {
        let deadline = Instant::now() + STEP;
        loop {
            if self.lcd.expect(rows, Duration::from_millis(300)).is_ok() {
                return Ok(());
            }
            if let Ok(r) = self.result.try_recv() {
                r.map_err(|e| anyhow::anyhow!("{e}"))?;
                bail!("the ceremony ended before the panel showed {rows:?}");
            }
            if Instant::now() > deadline {
                bail!("the panel never showed {rows:?}; it shows {:?}", self.panel.screen());
            }
        }
    }

    fn type_pin(&self, pin: &str) {
        let mut keys: Vec<Key> = pin.bytes().map(|b| Key::Digit(b - b'0')).collect();
        keys.push(Key::Ok);
        self.panel.press(&keys);
    }

    fn put_in(&self, name: &str) -> anyhow::Result<()> {
        self.panel.insert_new(name).map_err(|e| anyhow::anyhow!("{e}"))
    }

    fn take_out(&self) -> anyhow::Result<()> {
        self.panel.remove().map(drop).map_err(|e| anyhow::anyhow!("{e}"))
    }

    fn finish(self) -> anyhow::Result<()> {
        match self.result.recv_timeout(STEP) {
            Ok(r) => r.map_err(|e| anyhow::anyhow!("{e}")),
            Err(_) => bail!("the ceremony did not finish; the panel shows {:?}", self.panel.screen()),
        }
    }
}

fn job(panel: &FrontPanel, j: Job) -> anyhow::Result<People<'_>> {
    let lcd = panel.view();
    let result = panel.submit(j).map_err(|e| anyhow::anyhow!("{e}"))?.rx;
    Ok(People { panel, lcd, result })
}

/// The init ceremony at the panel with the demo's cards, each PIN typed twice.
pub fn init(panel: &FrontPanel, cards: &DemoCards) -> anyhow::Result<()> {
    let plan = InitPlan { policy: cards.policy, operators: 1, auditors: 1 };
    let mut p = job(panel, Job::Init(plan))?;
    for c in &cards.cards {
        p.see(&[
            &format!("Insert {}", if c.role == "admin" { "admin" } else { c.role }),
            &format!("card {} of {}", c.index, c.of),
        ])?;
        p.put_in(&c.name)?;
        p.see(&["New PIN"])?;
        p.type_pin(&c.pin);
        p.see(&["Confirm PIN"])?;
        p.type_pin(&c.pin);
        p.see(&["Card OK"])?;
        p.take_out()?;
    }
    p.see(&["Done"])?;
    p.finish().context("init ceremony")
}

/// A quorum login with the first k administrator cards, `then` under its authority, logout.
pub fn with_quorum(panel: &FrontPanel, cards: &DemoCards, then: Job) -> anyhow::Result<()> {
    quorum_login(panel, cards)?;
    job(panel, then)?.finish().context("administration under the quorum")?;
    let mut p = job(panel, Job::Logout)?;
    p.see(&["Remove card"])?;
    p.take_out()?;
    p.finish().context("logout")
}

/// A quorum login with the first k administrator cards; the last one stays in the reader.
pub fn quorum_login(panel: &FrontPanel, cards: &DemoCards) -> anyhow::Result<()> {
    let mut p = job(panel, Job::Login)?;
    let k = cards.policy.k;
    for (i, c) in cards.admins().take(usize::from(k)).enumerate() {
        p.see(&["Insert admin", &format!("card {} of {k}", i + 1)])?;
        p.put_in(&c.name)?;
        p.see(&["Enter PIN"])?;
        p.type_pin(&c.pin);
        if i + 1 < usize::from(k) {
            p.see(&["Remove card"])?;
            p.take_out()?;
        }
    }
    p.finish().context("quorum login")
}

/// The demo application in every domain with every capability.
pub fn register_demo_app(panel: &FrontPanel, cards: &DemoCards, cert_sha256: [u8; 32]) -> anyhow::Result<()> {
    let j =
        Job::Register { cert_sha256, name: "demo-app".into(), domains: u32::MAX, caps: Capabilities::ALL, quota: None };
    with_quorum(panel, cards, j)
}
