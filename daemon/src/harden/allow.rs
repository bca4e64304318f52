//! The seccomp allow-list: the system calls gmhsmd makes once hardened.
//!
//! Found by running `tests/harden.rs` with `GMHSMD_TEST_SECCOMP=off` under `strace -f` and
//! keeping the calls the daemon's threads (event loop, signal thread) make after
//! `PR_SET_NO_NEW_PRIVS`: accepting TLS and local connections, talking to the card, logging,
//! a SIGHUP reload (reading the CA file), SIGTERM and exit. Added by reasoning, for paths the
//! test does not take: the card link's reconnect (`socket(AF_UNIX)`, `connect`), heap growth
//! (`brk`, `mmap`, `mremap`, `mprotect`), `fstat` (older kernels without `statx`), a
//! contended lock (`futex`; `sched_yield` was seen killing the daemon through
//! the kernel audit log, syscall 24 on x86_64, when the signal thread exits), and the abort path (`getpid`, `gettid`, `tgkill`).
//! `fcntl` is needed by the standard library's debug check on closing a file descriptor
//! (`F_GETFD`) and is limited to reading and setting descriptor flags. `setsockopt` is
//! limited to `IPPROTO_TCP` / `TCP_NODELAY` (set on every accepted connection) and to
//! `SOL_SOCKET` / `SO_RCVTIMEO`, `SO_SNDTIMEO`: the deadline of a card-held TLS key's signature (`cardkey`, on its own blocking card connection). The handshake workers
//! are started before the hardening; they use only calls already on the list.
//!
//! The front panel's thread (`[panel]`) is started, and its devices opened, before the
//! hardening; it keeps its descriptors. After it, it waits on the keypad (`poll`, `ppoll`;
//! `read` of evdev records), writes the LCD (`ioctl` limited to `I2C_RDWR`, and `I2C_SLAVE`
//! should the bus be reopened at another address), sleeps in the HD44780 timings
//! (`nanosleep`, `clock_nanosleep`), and talks to pcscd over its Unix socket (calls already
//! on the list, and `poll`). These were added by reasoning from the backends' code
//! (`linux-embedded-hal`, `gmhsm_board::keypad`): no test runs the panel hardened on real
//! devices.

use std::collections::BTreeMap;

use seccompiler::{SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};

/// Allowed without conditions.
const PLAIN: &[i64] = &[
    // event loop, sockets
    #[cfg(target_arch = "x86_64")]
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_ctl,
    libc::SYS_accept4,
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_writev,
    libc::SYS_recvfrom,
    libc::SYS_sendto,
    libc::SYS_shutdown,
    libc::SYS_close,
    libc::SYS_getsockopt,
    libc::SYS_connect,
    // reload: reading the client CA and applications files
    libc::SYS_openat,
    libc::SYS_statx,
    libc::SYS_fstat,
    // memory
    libc::SYS_brk,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_mprotect,
    // threads, time, randomness, signals
    libc::SYS_futex,
    libc::SYS_sched_yield,
    libc::SYS_clock_gettime,
    libc::SYS_getrandom,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigprocmask,
    libc::SYS_sigaltstack,
    // the front panel: keypad waits, HD44780 delays
    #[cfg(target_arch = "x86_64")]
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_nanosleep,
    libc::SYS_clock_nanosleep,
    // abort, exit
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_tgkill,
    libc::SYS_exit,
    libc::SYS_exit_group,
    // a thread spawned just before the filter (the signal thread, the handshake workers) may
    // start running after it: glibc then registers rseq and the robust futex list, and an
    // rseq refusal aborts the process ("rseq registration failed"), seen when gmhsmd starts
    // unprivileged (systemd's User=) and skips the slower privilege drop
    libc::SYS_rseq,
    libc::SYS_set_robust_list,
];

/// `<linux/i2c-dev.h>`: set the bus's slave address; combined read/write transfer.
pub const I2C_SLAVE: i32 = 0x0703;
pub const I2C_RDWR: i32 = 0x0707;

/// `arg == value` on a 32-bit argument.
fn arg_eq(arg: u8, value: i32) -> SeccompRule {
    let cond = SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, value as u64)
        .expect("a valid argument index");
    SeccompRule::new(vec![cond]).expect("a non-empty rule")
}

/// Every allowed call, with its argument rules (an empty list allows any arguments).
pub fn rules() -> BTreeMap<i64, Vec<SeccompRule>> {
    let mut map: BTreeMap<i64, Vec<SeccompRule>> = PLAIN.iter().map(|&nr| (nr, Vec::new())).collect();
    // New sockets only for the card link: Unix domain.
    map.insert(libc::SYS_socket, vec![arg_eq(0, libc::AF_UNIX)]);
    map.insert(
        libc::SYS_setsockopt,
        [
            (libc::SOL_SOCKET, libc::SO_RCVTIMEO),
            (libc::SOL_SOCKET, libc::SO_SNDTIMEO),
            (libc::IPPROTO_TCP, libc::TCP_NODELAY),
        ]
        .into_iter()
        .map(|(lvl, opt)| {
            let level = SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, lvl as u64)
                .expect("a valid argument index");
            let name = SeccompCondition::new(2, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, opt as u64)
                .expect("a valid argument index");
            SeccompRule::new(vec![level, name]).expect("a non-empty rule")
        })
        .collect(),
    );
    // The panel's LCD: I2C transfers (and the slave address) on the /dev/i2c-N descriptor.
    map.insert(libc::SYS_ioctl, [I2C_SLAVE, I2C_RDWR].into_iter().map(|cmd| arg_eq(1, cmd)).collect());
    map.insert(
        libc::SYS_fcntl,
        [libc::F_GETFD, libc::F_SETFD, libc::F_GETFL, libc::F_SETFL].into_iter().map(|cmd| arg_eq(1, cmd)).collect(),
    );
    map
}
