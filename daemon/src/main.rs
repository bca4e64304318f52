//! `gmhsmd`: run the appliance daemon. Configuration from `--config FILE` (TOML, see
//! `docs/daemon.md`), overridden by flags. SIGINT / SIGTERM stop it after answering requests
//! in flight; SIGHUP re-reads the client CA and the applications list.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use gmhsm_daemon::Daemon;
use gmhsm_daemon::harden::harden;
use gmhsm_daemon::settings::Settings;

/// The gmhsm appliance daemon: serves application servers over TLS 1.3 with client
/// certificates and relays their requests to the crypto card.
#[derive(Parser, Debug)]
#[command(name = "gmhsmd", version)]
struct Cli {
    /// TOML configuration file (every key optional; see gmhsmd.example.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// TCP address to listen on, e.g. 0.0.0.0:7443.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// PEM file: server certificate followed by its chain.
    #[arg(long)]
    cert: Option<PathBuf>,
    /// PEM file: the server's private key; giving it chooses the file key over the
    /// card-held keys (`tls_key = "file"`).
    #[arg(long)]
    key: Option<PathBuf>,
    /// PEM file: CA certificate(s) that issue application client certificates.
    #[arg(long = "client-ca")]
    client_ca: Option<PathBuf>,
    /// Unix socket of the crypto card.
    #[arg(long = "card-socket")]
    card_socket: Option<PathBuf>,
    /// Path of the local tools socket.
    #[arg(long = "local-socket")]
    local_socket: Option<PathBuf>,
    /// Do not open the local tools socket.
    #[arg(long = "no-local")]
    no_local: bool,
    /// Maximum simultaneous connections.
    #[arg(long)]
    max_connections: Option<usize>,
    /// Maximum requests in flight per connection.
    #[arg(long)]
    max_in_flight: Option<usize>,
    /// Microseconds to keep polling without sleeping after handling events (0: off).
    #[arg(long = "busy-poll-us")]
    busy_poll_us: Option<u64>,
    /// Log level (error, warn, info, debug, trace).
    #[arg(long = "log-level")]
    log_level: Option<String>,
    /// Service user to drop to when started as root.
    #[arg(long)]
    user: Option<String>,
    /// Skip the process hardening (development only).
    #[arg(long = "no-harden")]
    no_harden: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match settings(&cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gmhsmd: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(settings.log_level.as_str())).init();
    match run(&settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("event=fatal error=\"{e:#}\"");
            ExitCode::FAILURE
        }
    }
}

/// The file's settings (or the defaults), with the flags applied over them.
fn settings(cli: &Cli) -> anyhow::Result<Settings> {
    let mut s = match &cli.config {
        Some(path) => Settings::load(path)?,
        None => Settings::default(),
    };
    macro_rules! set {
        ($flag:expr => $field:expr) => {
            if let Some(v) = $flag.clone() {
                $field = v;
            }
        };
    }
    set!(cli.listen => s.listen);
    set!(cli.cert => s.cert);
    if let Some(key) = &cli.key {
        s.key = key.clone();
        s.tls_key = "file".into();
    }
    set!(cli.client_ca => s.client_ca);
    set!(cli.card_socket => s.card_socket);
    set!(cli.local_socket => s.local.path);
    set!(cli.max_connections => s.limits.max_connections);
    set!(cli.max_in_flight => s.limits.max_in_flight_per_connection);
    set!(cli.busy_poll_us => s.tuning.busy_poll_us);
    set!(cli.log_level => s.log_level);
    set!(cli.user => s.harden.user);
    if cli.no_local {
        s.local.enabled = false;
    }
    if cli.no_harden {
        s.harden.enabled = false;
    }
    s.check().context("in the command-line flags")?;
    Ok(s)
}

fn run(settings: &Settings) -> anyhow::Result<()> {
    // Everything that opens a file or binds a socket happens before the hardening.
    let harden_config = settings.harden_config()?;
    let daemon = Daemon::bind(settings.daemon_config()?)?;
    // The front panel's thread and devices, before the hardening too.
    let panel = gmhsm_daemon::panel::start(&settings.panel, &settings.card_socket)?;
    if let Some(p) = &panel {
        p.running(&settings.listen.to_string());
    }
    let shutdown = daemon.shutdown_handle();
    let reload = daemon.reload_handle();
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP]).context("installing signal handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig == SIGHUP {
                    log::info!("event=signal signal=HUP action=reload");
                    reload.reload();
                } else {
                    log::info!("event=signal signal={sig} action=shutdown");
                    shutdown.shutdown();
                    return;
                }
            }
        })
        .context("starting the signal thread")?;

    match harden_config {
        Some(h) => {
            let report = harden(&h).context("hardening")?;
            if report.mlock != gmhsm_daemon::harden::Mlock::All {
                log::warn!("event=harden {report}");
            } else {
                log::info!("event=harden {report}");
            }
        }
        None => log::warn!("event=harden skipped=true reason=disabled_by_configuration"),
    }
    daemon.run()
}
