//! Booting a whole virtual appliance: the card process, the front panel, the demo PKI and the
//! demo's init ceremony, the daemon, the client profile, and a supervisor that restarts the
//! card if its process dies (a card reset).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gmhsm_daemon::{Daemon, DaemonConfig};
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::noise::NoiseFault;
use crate::panel::FrontPanel;
use crate::panel::demo::{self, DemoCards};
use crate::pki::{Pki, SERVER_NAME, write_atomic};

#[derive(Clone)]
pub struct Options {
    pub state: PathBuf,
    /// PKI folder; `STATE/pki` when `None`. Appliances of one domain can share one.
    pub pki: Option<PathBuf>,
    pub demo: bool,
    pub listen: SocketAddr,
    pub noise_fault: Option<NoiseFault>,
    /// Demo administrator cards and their login quorum.
    pub cards: u8,
    pub quorum: u8,
    /// The front panel's card reader.
    pub reader: crate::panel::ReaderKind,
    /// Connection bound of the private link, in total and per client certificate (`None`:
    /// the daemon's defaults). Benchmarks of many idle connections raise it.
    pub max_connections: Option<usize>,
    /// How long the daemon's event loop and the card's link threads keep polling without
    /// sleeping after they have answered (zero: off; see `DaemonConfig::busy_poll`).
    pub busy_poll: Duration,
    /// The card runs its portable code paths only, as on a CPU without AVX-512
    /// (`gmhsm_card::use_portable_kernels`; for benchmarks).
    pub portable_kernels: bool,
    /// Serve a card that is already running on this socket (a `gmhsm-card` on its board, say)
    /// instead of starting and supervising a simulated one.
    pub card_socket: Option<PathBuf>,
}

/// The card process of `gmhsm-sim card`: boot the firmware and serve the card link. A
/// factory-fresh card waits for the init ceremony (the demo runs it at the front panel).
pub fn run_card(
    state: &Path,
    socket: &Path,
    fault: Option<NoiseFault>,
    busy_poll: Duration,
    portable_kernels: bool,
) -> anyhow::Result<()> {
    // The card dies with the appliance process.
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)?;
    if portable_kernels {
        gmhsm_card::use_portable_kernels();
        log::info!("card: portable kernels only (--portable-kernels)");
    }
    std::fs::create_dir_all(state)?;
    let devices = crate::board::devices(state, fault).context("opening the card's devices")?;
    let hsm = gmhsm_firmware::Hsm::boot(devices);
    let st = hsm.status();
    match &st.error {
        Some(why) => log::error!("card: ERROR STATE: {why}"),
        None if st.initialized => log::info!("card: operational, {} keys, boot {}", st.keys, st.boots),
        None => log::info!("card: factory state, waiting for the init ceremony"),
    }
    crate::card::serve(hsm, socket, busy_poll)
}

/// Open the simulated enclosure of the appliance in `state`.
pub fn trip_tamper(state: &Path) -> anyhow::Result<()> {
    let card = state.join("card");
    if !card.is_dir() {
        bail!("{} is not an appliance state folder", state.display());
    }
    std::fs::write(card.join("tamper.trip"), b"1")?;
    Ok(())
}

/// Removes a socket file when `up` returns.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

struct CardProcess {
    child: Mutex<Option<Child>>,
    stopping: AtomicBool,
}

/// The daemon's applications file of the appliance in `state` (see [`crate::pki::admit`]).
fn applications_file(state: &Path) -> PathBuf {
    state.join("applications")
}

/// The demo on a factory-fresh card: demo cards and PINs, the init ceremony at the front
/// panel, then a quorum login that registers the demo application. A card that is already
/// initialized (a restart) or in its error state is left alone.
fn demo_init(opts: &Options, panel: &FrontPanel, socket: &Path, pki: &Pki) -> anyhow::Result<()> {
    let mut link = gmhsm_proto::link::BlockingLink::connect(socket)?;
    let ask = link.call(gmhsm_proto::sessions::PROVISIONING, gmhsm_proto::Request::GetStatus, Duration::from_secs(60));
    let st = match ask? {
        Ok(gmhsm_proto::Response::Status(st)) => st,
        other => bail!("card status: {other:?}"),
    };
    drop(link);
    if st.initialized || st.error.is_some() {
        return Ok(());
    }
    panel.boot("init ceremony", 3);
    let dir = panel.cards_dir().to_path_buf();
    let cards = DemoCards::create(&dir, opts.cards, opts.quorum)?;
    cards.announce(&dir);
    demo::init(panel, &cards).context("the demo's init ceremony")?;
    log::info!("card: initialized by the init ceremony ({} of {} cards)", opts.quorum, opts.cards);
    demo::register_demo_app(panel, &cards, crate::pki::fingerprint(&pki.client_cert())?)
        .context("registering the demo application")?;
    log::info!("demo application registered under a quorum login");
    Ok(())
}

fn spawn_card(opts: &Options, socket: &Path) -> anyhow::Result<Child> {
    let _ = std::fs::remove_file(socket);
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg("card").arg("--state").arg(opts.state.join("card")).arg("--socket").arg(socket);
    cmd.arg("--busy-poll-us").arg(opts.busy_poll.as_micros().to_string());
    if opts.portable_kernels {
        cmd.arg("--portable-kernels");
    }
    if let Some(f) = opts.noise_fault {
        cmd.arg("--noise-fault").arg(match f {
            NoiseFault::Stuck(_) => "stuck",
            NoiseFault::Biased => "biased",
            NoiseFault::Repeating => "repeating",
        });
    }
    let mut child = cmd.spawn().context("starting the card process")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !socket.exists() {
        if let Some(status) = child.try_wait()? {
            bail!("the card process exited during boot ({status})");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("the card did not come up within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

/// `gmhsm-sim up`.
pub fn up(opts: &Options) -> anyhow::Result<()> {
    std::fs::create_dir_all(&opts.state).with_context(|| format!("creating {}", opts.state.display()))?;
    let lock_file = std::fs::File::create(opts.state.join("lock"))?;
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|_| anyhow::anyhow!("another gmhsm-sim is running on {}", opts.state.display()))?;
    let profile = opts.state.join("client.toml");
    let _ = std::fs::remove_file(&profile);

    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(SIGINT, stop.clone())?;
    signal_hook::flag::register(SIGTERM, stop.clone())?;

    let pki = opts.pki();
    if opts.demo && !pki.exists() {
        pki.create().context("creating the demo PKI")?;
    }
    let socket = opts.card_socket.clone().unwrap_or_else(|| opts.state.join("card.sock"));
    if opts.card_socket.is_some() && !socket.exists() {
        bail!("no card listens on {}", socket.display());
    }
    let panel = FrontPanel::start_with(&opts.state, &socket, opts.reader)?;
    let panel_socket = opts.state.join("panel.sock");
    crate::panel::control::serve(panel.clone(), &panel_socket).context("opening the panel's control socket")?;
    let _panel_socket = RemoveOnDrop(panel_socket);
    panel.boot("card process", 1);
    // An external card (`--card-socket`) is neither started nor supervised here.
    let child = if opts.card_socket.is_some() { None } else { Some(spawn_card(opts, &socket)?) };
    let card = Arc::new(CardProcess { child: Mutex::new(child), stopping: AtomicBool::new(false) });
    panel.boot("self-tests", 2);

    if opts.demo
        && let Err(e) = demo_init(opts, &panel, &socket, &pki)
    {
        stop_card(&card);
        return Err(e);
    }
    if !pki.exists() {
        panel.running("no link: not initialized");
        log::info!(
            "appliance not initialized: waiting for the init ceremony (run with --demo to initialize with demo credentials)"
        );
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
        stop_card(&card);
        return Ok(());
    }

    // The appliance's TLS keys live in the card; the daemon gets labels and certificates.
    panel.boot("TLS keys", 4);
    let tls_keys = match tls_keys(&socket, &pki) {
        Ok(keys) => keys,
        Err(e) => {
            stop_card(&card);
            return Err(e);
        }
    };
    let config = daemon_config(opts, &pki, &socket, tls_keys)?;
    let daemon = Daemon::bind(config)?;
    let addr = daemon.local_addr();
    let handle = daemon.shutdown_handle();
    panel.boot("private link", 5);
    panel.running(&addr.to_string());

    // Signals → daemon shutdown.
    {
        let stop = stop.clone();
        let handle = handle.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
            handle.shutdown();
        });
    }
    // Card supervisor: a card process that dies is restarted (a card reset).
    {
        let card = card.clone();
        let opts = Options { demo: false, ..opts.clone() };
        let socket = socket.clone();
        std::thread::spawn(move || supervise(&card, &opts, &socket));
    }

    write_atomic(&profile, profile_toml(addr, &pki, "client").as_bytes(), 0o644)?;
    log::info!("appliance serving on {addr}; client profile {}", profile.display());
    let result = daemon.run();
    let _ = std::fs::remove_file(&profile);
    stop_card(&card);
    log::info!("appliance stopped");
    result
}

/// The appliance's TLS keys, generated in (or read from) the card; the last certificates
/// issued if the card cannot provide them now.
fn tls_keys(socket: &Path, pki: &Pki) -> anyhow::Result<Vec<crate::provision::TlsKey>> {
    match crate::provision::tls_keys(socket, pki) {
        Ok(keys) => Ok(keys),
        Err(e) => {
            let why = crate::provision::card_error(socket).unwrap_or_else(|| format!("{e:#}"));
            match crate::provision::cached(pki) {
                Some(keys) => {
                    log::error!("card cannot provide the TLS keys ({why}); serving the last certificates");
                    Ok(keys)
                }
                None => bail!("the crypto card cannot provide the appliance's TLS keys: {why}"),
            }
        }
    }
}

/// The daemon of `gmhsm-sim up`: the private link on `opts.listen`, the card on `socket`.
fn daemon_config(
    opts: &Options,
    pki: &Pki,
    socket: &Path,
    tls_keys: Vec<crate::provision::TlsKey>,
) -> anyhow::Result<DaemonConfig> {
    let mut config =
        DaemonConfig::new(opts.listen, Vec::new(), Vec::new(), std::fs::read(pki.ca_cert())?, socket.to_path_buf());
    // The daemon admits only the applications its file lists: the demo application, and those
    // `gmhsm-sim client-cert` adds (the daemon reads the file again when it changed).
    crate::pki::admit(&applications_file(&opts.state), &pki.client_cert())?;
    config.applications = gmhsm_daemon::Applications::File(applications_file(&opts.state));
    config.card_tls_keys = tls_keys
        .into_iter()
        .map(|k| gmhsm_daemon::CardTlsKey {
            label: k.label,
            cert_chain_pem: k.cert_chain_pem,
            scheme: match k.alg {
                gmhsm_proto::KeyAlg::Sm2 => gmhsm_daemon::CardKeyScheme::Sm2Sm3,
                _ => gmhsm_daemon::CardKeyScheme::EcdsaP256Sha256,
            },
        })
        .collect();
    // Tools on the appliance (admin CLI, auditors) reach it through a local socket, admitted
    // by peer credentials: here, the user running the simulator.
    // The simulator is also the benchmark target: no per-application rate limit (gmhsmd's
    // production default is 1000/s, burst 2000; see docs/daemon.md).
    config.rate_limit = None;
    if let Some(n) = opts.max_connections {
        config.max_connections = n;
        config.max_connections_per_client = n;
        // Benchmarks open every connection from the loopback address at once.
        config.max_handshakes_per_source = n;
    }
    config.busy_poll = opts.busy_poll;
    config.local = Some(gmhsm_daemon::LocalSocket {
        path: opts.state.join("local.sock"),
        allowed_uids: vec![nix::unistd::getuid().as_raw()],
    });
    Ok(config)
}

fn supervise(card: &CardProcess, opts: &Options, socket: &Path) {
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if card.stopping.load(Ordering::Relaxed) {
            return;
        }
        let mut guard = match card.child.lock() {
            Ok(g) => g,
            Err(_) => return,
        };
        let exited = match guard.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(status))) => Some(status),
            _ => None,
        };
        if let Some(status) = exited {
            if card.stopping.load(Ordering::Relaxed) {
                return;
            }
            log::warn!("card process exited ({status}); restarting the card");
            match spawn_card(opts, socket) {
                Ok(c) => *guard = Some(c),
                Err(e) => log::error!("card restart failed: {e:#}"),
            }
        }
    }
}

fn stop_card(card: &CardProcess) {
    card.stopping.store(true, Ordering::Relaxed);
    if let Ok(mut guard) = card.child.lock()
        && let Some(mut c) = guard.take()
    {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGTERM);
        let _ = c.wait();
    }
}

impl Options {
    pub fn pki(&self) -> Pki {
        match &self.pki {
            Some(dir) => Pki::at(dir),
            None => Pki::new(&self.state),
        }
    }
}

/// A client profile for the certificate `pki/NAME.pem` (absolute paths).
fn profile_toml(addr: SocketAddr, pki: &Pki, name: &str) -> String {
    let abs = |p: PathBuf| std::path::absolute(&p).unwrap_or(p).display().to_string();
    format!(
        "# gmhsm client profile written by gmhsm-sim.\n\
         address = \"{addr}\"\n\
         server_name = \"{SERVER_NAME}\"\n\
         ca_cert = \"{}\"\n\
         client_cert = \"{}\"\n\
         client_key = \"{}\"\n",
        abs(pki.ca_cert()),
        abs(pki.dir.join(format!("{name}.pem"))),
        abs(pki.dir.join(format!("{name}.key"))),
    )
}

/// `gmhsm-sim client-cert`: issue a certificate for another application, add it to the
/// appliance's applications file (the daemon admits it at its first connection) and write its
/// profile `STATE/NAME.toml` next to the running appliance's `client.toml`.
pub fn client_cert(state: &Path, pki_dir: Option<&Path>, name: &str) -> anyhow::Result<PathBuf> {
    let pki = match pki_dir {
        Some(d) => Pki::at(d),
        None => Pki::new(state),
    };
    if !pki.exists() {
        bail!("{} holds no appliance PKI", pki.dir.display());
    }
    let running = std::fs::read_to_string(state.join("client.toml"))
        .with_context(|| format!("{}: is the appliance running?", state.join("client.toml").display()))?;
    let addr: SocketAddr = running
        .lines()
        .find_map(|l| l.strip_prefix("address = \"")?.strip_suffix('"')?.parse().ok())
        .context("client.toml names no address")?;
    let (cert, _) = pki.issue_client(name)?;
    crate::pki::admit(&applications_file(state), &cert)?;
    let path = state.join(format!("{name}.toml"));
    write_atomic(&path, profile_toml(addr, &pki, name).as_bytes(), 0o644)?;
    Ok(path)
}
