//! Process hardening, applied once everything is bound and opened: no core dumps, not
//! dumpable, memory locked, privileges dropped, no new privileges, a seccomp allow-list.
//!
//! The order is fixed (each step needs the privileges the later ones remove):
//! 1. `setrlimit(RLIMIT_CORE, 0)`;
//! 2. `prctl(PR_SET_DUMPABLE, 0)` (no core, no ptrace by the same uid, `/proc/<pid>/*`
//!    owned by root);
//! 3. raise `RLIMIT_MEMLOCK` to unlimited, then `mlockall(MCL_CURRENT | MCL_FUTURE)`; when
//!    the limit cannot be raised (no `CAP_SYS_RESOURCE`), `mlockall(MCL_CURRENT)` only, as a
//!    finite limit with `MCL_FUTURE` would make later allocations fail. Anything short of
//!    all memory locked is reported, or aborts start when [`HardenConfig::require_mlock`];
//! 4. when running as root: `setgroups([])`, `setresgid`, `setresuid` to the service user
//!    (and check that root cannot be regained);
//! 5. `prctl(PR_SET_NO_NEW_PRIVS, 1)`;
//! 6. a seccomp BPF allow-list ([`allow::rules`]) on every thread of the process (TSYNC).
//!
//! Any step that fails, other than mlock without `require_mlock`, is an error: the daemon
//! does not start half-hardened.

use std::fmt;

use anyhow::{Context, anyhow, bail};
use nix::sys::mman::{MlockAllFlags, mlockall};
use nix::sys::prctl;
use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit, setrlimit};
use nix::unistd::{Gid, Uid, User, getresgid, getresuid, setgroups, setresgid, setresuid};
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

mod allow;

/// What to do with a system call outside the allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeccompMode {
    /// No filter (development only).
    Off,
    /// The call fails with `EPERM`; the daemon logs the error it causes and goes on.
    Errno,
    /// The kernel kills the process with `SIGSYS` (and logs it to the audit log).
    Kill,
}

/// What [`harden`] does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HardenConfig {
    /// The user to run as after hardening when started as root; `None` keeps root (refused
    /// unless [`HardenConfig::allow_root`]).
    pub user: Option<String>,
    /// Allow staying root when `user` is `None` (the simulator, tests).
    pub allow_root: bool,
    /// Abort when memory cannot be locked (instead of reporting it).
    pub require_mlock: bool,
    pub seccomp: SeccompMode,
}

impl Default for HardenConfig {
    fn default() -> Self {
        HardenConfig {
            user: Some("gmhsm".into()),
            allow_root: false,
            require_mlock: false,
            seccomp: SeccompMode::Errno,
        }
    }
}

/// How far memory could be locked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mlock {
    /// All current and future pages are locked.
    All,
    /// The pages mapped at hardening are locked; later ones may reach swap. Why.
    CurrentOnly(String),
    /// Nothing is locked. Why.
    Failed(String),
}

/// What [`harden`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HardenReport {
    /// How far memory is locked (short of [`Mlock::All`], pages may reach swap).
    pub mlock: Mlock,
    /// `(uid, gid)` dropped to; `None` when the process was not root.
    pub dropped_to: Option<(u32, u32)>,
    pub seccomp: SeccompMode,
}

impl fmt::Display for HardenReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "core=0 dumpable=0 no_new_privs=1 ")?;
        match &self.mlock {
            Mlock::All => write!(f, "mlock=all ")?,
            Mlock::CurrentOnly(why) => write!(f, "mlock=current_only mlock_note=\"{why}\" ")?,
            Mlock::Failed(why) => write!(f, "mlock=failed mlock_note=\"{why}\" ")?,
        }
        match self.dropped_to {
            Some((u, g)) => write!(f, "uid={u} gid={g} ")?,
            None => write!(f, "uid=unchanged ")?,
        }
        write!(f, "seccomp={:?}", self.seccomp)
    }
}

/// Apply every step, in order. Call it after binding sockets and reading files, before
/// serving; threads already running are covered by the seccomp filter but must not depend
/// on privileges.
pub fn harden(cfg: &HardenConfig) -> anyhow::Result<HardenReport> {
    setrlimit(Resource::RLIMIT_CORE, 0, 0).context("setrlimit(RLIMIT_CORE, 0)")?;
    prctl::set_dumpable(false).context("prctl(PR_SET_DUMPABLE, 0)")?;

    let mlock = lock_memory();
    if let (Mlock::CurrentOnly(why) | Mlock::Failed(why), true) = (&mlock, cfg.require_mlock) {
        bail!("memory not fully locked and require_mlock is set: {why}");
    }

    let dropped_to = drop_privileges(cfg)?;
    prctl::set_no_new_privs().context("prctl(PR_SET_NO_NEW_PRIVS, 1)")?;
    if cfg.seccomp != SeccompMode::Off {
        let program = filter(cfg.seccomp)?;
        seccompiler::apply_filter_all_threads(&program).map_err(|e| anyhow!("installing the seccomp filter: {e}"))?;
    }
    Ok(HardenReport { mlock, dropped_to, seccomp: cfg.seccomp })
}

/// Raise `RLIMIT_MEMLOCK`, then lock memory. With `MCL_FUTURE`, every later allocation
/// counts against the limit once the privileges (`CAP_IPC_LOCK`) are gone, and an allocation
/// past it fails, which aborts the daemon: so `MCL_FUTURE` is used only when the limit is
/// unlimited, otherwise only the current pages are locked and that is reported.
fn lock_memory() -> Mlock {
    let unlimited = setrlimit(Resource::RLIMIT_MEMLOCK, RLIM_INFINITY, RLIM_INFINITY).is_ok()
        || getrlimit(Resource::RLIMIT_MEMLOCK).is_ok_and(|(_, hard)| {
            hard == RLIM_INFINITY && setrlimit(Resource::RLIMIT_MEMLOCK, RLIM_INFINITY, RLIM_INFINITY).is_ok()
        });
    if unlimited {
        return match mlockall(MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE) {
            Ok(()) => Mlock::All,
            Err(e) => Mlock::Failed(format!("mlockall: {e}")),
        };
    }
    // A finite limit we cannot raise (no CAP_SYS_RESOURCE): raise the soft limit to the
    // hard one and lock what is mapped now.
    let hard = getrlimit(Resource::RLIMIT_MEMLOCK).map_or(0, |(_, h)| h);
    let _ = setrlimit(Resource::RLIMIT_MEMLOCK, hard, hard);
    match mlockall(MlockAllFlags::MCL_CURRENT) {
        Ok(()) => {
            Mlock::CurrentOnly(format!("RLIMIT_MEMLOCK is {hard} bytes and cannot be raised: new pages are not locked"))
        }
        Err(e) => Mlock::Failed(format!("mlockall: {e} (RLIMIT_MEMLOCK {hard} bytes)")),
    }
}

/// When root, become `cfg.user` for good; when not root, change nothing.
fn drop_privileges(cfg: &HardenConfig) -> anyhow::Result<Option<(u32, u32)>> {
    let ids = getresuid().context("getresuid")?;
    let root = [ids.real, ids.effective, ids.saved].iter().any(|u| u.is_root());
    if !root {
        return Ok(None);
    }
    let Some(name) = &cfg.user else {
        if cfg.allow_root {
            return Ok(None);
        }
        bail!("running as root and no service user is configured");
    };
    let user = User::from_name(name)
        .with_context(|| format!("looking up user {name}"))?
        .ok_or_else(|| anyhow!("no such user: {name}"))?;
    if user.uid.is_root() {
        bail!("the service user {name} is root");
    }
    let (uid, gid): (Uid, Gid) = (user.uid, user.gid);
    setgroups(&[]).context("setgroups([])")?;
    setresgid(gid, gid, gid).context("setresgid")?;
    setresuid(uid, uid, uid).context("setresuid")?;
    let (u, g) = (getresuid()?, getresgid()?);
    if [u.real, u.effective, u.saved] != [uid; 3] || [g.real, g.effective, g.saved] != [gid; 3] {
        bail!("privileges were not dropped completely");
    }
    if setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).is_ok() {
        bail!("root could be regained after dropping privileges");
    }
    Ok(Some((uid.as_raw(), gid.as_raw())))
}

/// The BPF program: allow [`allow::rules`], everything else per `mode`.
fn filter(mode: SeccompMode) -> anyhow::Result<BpfProgram> {
    let mismatch = match mode {
        SeccompMode::Kill => SeccompAction::KillProcess,
        _ => SeccompAction::Errno(libc::EPERM as u32),
    };
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| anyhow!("seccomp on {}: {e}", std::env::consts::ARCH))?;
    let f = SeccompFilter::new(allow::rules(), mismatch, SeccompAction::Allow, arch)
        .map_err(|e| anyhow!("seccomp filter: {e}"))?;
    BpfProgram::try_from(f).map_err(|e| anyhow!("compiling the seccomp filter: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_compiles_in_both_modes() {
        assert!(!filter(SeccompMode::Errno).expect("errno").is_empty());
        assert!(!filter(SeccompMode::Kill).expect("kill").is_empty());
    }

    #[test]
    fn report_is_one_line_of_fields() {
        let r = HardenReport {
            mlock: Mlock::Failed("EPERM".into()),
            dropped_to: Some((65534, 65534)),
            seccomp: SeccompMode::Errno,
        };
        let s = r.to_string();
        assert!(!s.contains('\n'));
        assert!(s.contains("mlock=failed") && s.contains("uid=65534"), "{s}");
    }
}
