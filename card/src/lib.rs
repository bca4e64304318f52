//! The card runtime: the firmware (`gmhsm_firmware::Hsm`) behind a Unix socket speaking
//! card-link frames (`CardFrame` in, `ServerFrame` out), on whatever board [`Platform`] it
//! was booted on — the production board's devices (`gmhsm-card`) or simulated ones
//! (`gmhsm-sim card`, and [`testing::InProcessCard`] in other crates' tests).
//!
//! Sessions belong to the link they came on: each link's session numbers map to card sessions
//! of their own (`LinkSessions`, `link.rs`), so a process on one link cannot name (and act in)
//! a session of another — the front panel's, where a quorum logged in. When a link goes, the
//! card closes every session it had: the authority held in one ends with its link.
//!
//! Threads: one per link (at most [`ServeOptions::max_links`]), the card behind one mutex; a
//! nonce engine keeping the SM2 / P-256 pools full (`engine.rs`); a keygen worker computing
//! RSA primes off the card's lock (`longops.rs`).
#![forbid(unsafe_code)]

use std::io;
use std::net::Shutdown;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use gmhsm_firmware::Hsm;
use gmhsm_platform::Platform;

mod engine;
mod link;
mod longops;
#[cfg(feature = "testing")]
pub mod testing;

pub use longops::MAX_PARKED;

/// Called with every card frame a link decoded, before it is executed (tests see what reached
/// the card through it; see [`testing::InProcessCard::seen`]).
pub type Tap = Arc<dyn Fn(&gmhsm_proto::CardFrame) + Send + Sync>;

/// How the runtime serves its links.
#[derive(Clone)]
pub struct ServeOptions {
    /// After answering, a link's thread keeps reading without blocking for this long before
    /// it blocks (zero: it blocks at once). Saves a sleep and a wake-up per request when the
    /// daemon's next request follows at once.
    pub busy_poll: Duration,
    /// Most card-link connections served at once; one more is closed at accept.
    pub max_links: usize,
    /// Set (and the socket connected to once, to wake the accept): [`serve_listener`] closes
    /// every link and returns the card.
    pub stop: Option<Arc<AtomicBool>>,
    /// Shown every decoded frame (none: nothing is shown).
    pub tap: Option<Tap>,
}

impl Default for ServeOptions {
    /// No busy polling, [`MAX_LINKS`] links, no stop flag, no tap.
    fn default() -> Self {
        ServeOptions { busy_poll: Duration::ZERO, max_links: MAX_LINKS, stop: None, tap: None }
    }
}

/// Make the card choose its portable code everywhere, as on a CPU without AVX-512: the RSA
/// exponentiation (`gmhsm-ifma`), the SM2 / P-256 nonce, key-pair and decryption lanes
/// (`gmhsm-ec-ifma`), the multi-buffer SM3 (`gmhsm-sm3x`) and SM4 on GFNI (`gmhsm-sm4`; AES-NI
/// is then used where the CPU has it). Call before the card boots: tables and ciphers made
/// before keep their path. For benchmarks of the portable paths on a machine that has AVX-512,
/// and to rule the kernels out when hunting a fault; the answers are the same either way.
pub fn use_portable_kernels() {
    gmhsm_ifma::set_enabled(false);
    gmhsm_ec_ifma::set_enabled(false);
    gmhsm_sm3x::set_enabled(false);
    gmhsm_sm4::set_gfni_enabled(false);
}

/// Default bound on card-link connections (the daemon's relay link, its TLS signing links,
/// the front panel's link).
pub const MAX_LINKS: usize = 8;

/// The card and the work it shares with its helper threads.
pub(crate) struct Card<P: Platform> {
    pub hsm: Mutex<Hsm<P>>,
    /// The nonce engine's queues, behind their own short lock (see `engine.rs`).
    pub exchange: Mutex<engine::Exchange>,
    /// Signalled (with `exchange`) when jobs were drawn.
    pub wake: Condvar,
    /// Where RSA key generations are computed, off the card's lock (`longops.rs`).
    pub workers: longops::Workers,
    pub tap: Option<Tap>,
}

/// Bind `socket` (mode 0600, see [`listen_atomically`]) and serve it: [`serve_listener`].
pub fn serve<P>(hsm: Hsm<P>, socket: &Path, opts: ServeOptions) -> io::Result<Hsm<P>>
where
    P: Platform + 'static,
    Hsm<P>: Send,
{
    let listener = listen_atomically(socket)?;
    log::info!("card: listening on {}", socket.display());
    serve_listener(hsm, listener, opts)
}

/// Serve card-link connections on `listener` until [`ServeOptions::stop`] is set (forever
/// without one). Each connection gets a thread; the card itself is one state machine behind a
/// mutex, so requests are executed one at a time, in order per connection. The nonce engine
/// computes, on another core, the nonce and key-pair batches the link threads draw for it.
///
/// Stopped, it closes every link (each link's sessions are closed on the card, as when a peer
/// goes), waits for their threads and the engine, and returns the card.
pub fn serve_listener<P>(hsm: Hsm<P>, listener: UnixListener, opts: ServeOptions) -> io::Result<Hsm<P>>
where
    P: Platform + 'static,
    Hsm<P>: Send,
{
    let card = Arc::new(Card {
        hsm: Mutex::new(hsm),
        exchange: Mutex::new(engine::Exchange::default()),
        wake: Condvar::new(),
        workers: longops::Workers::start()?,
        tap: opts.tap.clone(),
    });
    let refiller = card.clone();
    let stopped = opts.stop.clone().unwrap_or_default();
    let engine_stop = stopped.clone();
    let engine = std::thread::Builder::new()
        .name("card-nonces".into())
        .spawn(move || engine::refill_loop(&refiller, &engine_stop))?;
    let mut links: Vec<(UnixStream, JoinHandle<()>)> = Vec::new();
    for conn in listener.incoming() {
        if stopped.load(Ordering::SeqCst) {
            break;
        }
        match conn {
            Ok(stream) => {
                links.retain(|(_, t)| !t.is_finished());
                if links.len() >= opts.max_links {
                    log::warn!("card: refusing a link: {} already open", opts.max_links);
                    continue;
                }
                let (card, busy_poll, kept) = (card.clone(), opts.busy_poll, stream.try_clone()?);
                let thread = std::thread::Builder::new().name("card-link".into()).spawn(move || {
                    if let Err(e) = link::serve_conn(&card, stream, busy_poll) {
                        log::warn!("card: link closed: {e}");
                    }
                })?;
                links.push((kept, thread));
            }
            Err(e) => log::warn!("card: accept failed: {e}"),
        }
    }
    stopped.store(true, Ordering::SeqCst);
    for (stream, thread) in links {
        let _ = stream.shutdown(Shutdown::Both);
        let _ = thread.join();
    }
    let _ = engine.join();
    let card = Arc::into_inner(card).ok_or_else(|| io::Error::other("card still shared after its threads ended"))?;
    card.hsm.into_inner().map_err(|_| io::Error::other("a thread panicked inside the card"))
}

/// Bind and listen on a temporary name, restrict it to the owner, then rename it to `socket`:
/// whoever waits for `socket` to exist (the simulator, the ceremony tools) finds a listening
/// socket with its final mode. Binding at the final name leaves a window between `bind` and
/// `listen` in which a connect is refused.
pub fn listen_atomically(socket: &Path) -> io::Result<UnixListener> {
    let mut tmp = socket.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&tmp, socket)?;
    Ok(listener)
}
