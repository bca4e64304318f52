//! `gmhsmd`: run the appliance daemon from the command line; SIGINT / SIGTERM stop it cleanly.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use gmhsm_daemon::{Daemon, DaemonConfig};

/// The gmhsm appliance daemon: serves application servers over TLS 1.3 with client
/// certificates and relays their requests to the crypto card.
#[derive(Parser, Debug)]
#[command(name = "gmhsmd", version)]
struct Cli {
    /// TCP address to listen on, e.g. 0.0.0.0:7443.
    #[arg(long)]
    listen: SocketAddr,
    /// PEM file: server certificate followed by its chain.
    #[arg(long)]
    cert: PathBuf,
    /// PEM file: the server's private key.
    #[arg(long)]
    key: PathBuf,
    /// PEM file: CA certificate(s) that issue application client certificates.
    #[arg(long = "client-ca")]
    client_ca: PathBuf,
    /// Unix socket of the crypto card.
    #[arg(long = "card-socket")]
    card_socket: PathBuf,
    /// Maximum simultaneous connections.
    #[arg(long, default_value_t = 256)]
    max_connections: usize,
    /// Maximum requests in flight per connection.
    #[arg(long, default_value_t = 32)]
    max_in_flight: usize,
}

fn read(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = DaemonConfig::new(
        cli.listen,
        read(&cli.cert)?,
        read(&cli.key)?,
        read(&cli.client_ca)?,
        cli.card_socket,
    );
    config.max_connections = cli.max_connections;
    config.max_in_flight_per_conn = cli.max_in_flight;

    let daemon = Daemon::bind(config)?;
    let handle = daemon.shutdown_handle();
    let mut signals = Signals::new([SIGINT, SIGTERM]).context("installing signal handlers")?;
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            log::info!("signal {sig}: shutting down");
            handle.shutdown();
        }
    });
    daemon.run()
}
