//! `gmhsm-sim`: boots a virtual gmhsm appliance (crypto card process + daemon) on simulated
//! hardware.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gmhsm_sim::noise::NoiseFault;

#[derive(Parser)]
#[command(name = "gmhsm-sim", version, about = "Run a virtual gmhsm appliance on simulated hardware")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Boot the appliance and serve until SIGINT / SIGTERM.
    Up {
        /// State folder (flash image, tamper RAM, certificates); created if missing.
        #[arg(long)]
        state: PathBuf,
        /// Initialize a factory-fresh appliance with demo credentials and write
        /// STATE/client.toml for the `gmhsm` CLI.
        #[arg(long)]
        demo: bool,
        /// Address of the private link.
        #[arg(long, default_value = "127.0.0.1:7443")]
        listen: SocketAddr,
        /// Inject a noise-source fault into the card: stuck, biased or repeating.
        #[arg(long)]
        noise_fault: Option<NoiseFault>,
        /// PKI folder to use instead of STATE/pki: appliances of one security domain share it,
        /// so one client profile reaches each of them (failover).
        #[arg(long)]
        pki: Option<PathBuf>,
    },
    /// Issue a client certificate for another application and write STATE/NAME.toml.
    ClientCert {
        #[arg(long)]
        state: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        pki: Option<PathBuf>,
    },
    /// Open the simulated enclosure: the card zeroizes its device master key.
    TripTamper {
        #[arg(long)]
        state: PathBuf,
    },
    /// The crypto card process (started by `up`).
    #[command(hide = true)]
    Card {
        #[arg(long)]
        state: PathBuf,
        #[arg(long)]
        socket: PathBuf,
        #[arg(long)]
        init_demo: bool,
        /// SHA-256 (hex) of the demo client certificate, registered at demo initialization.
        #[arg(long)]
        demo_app: Option<String>,
        #[arg(long)]
        noise_fault: Option<NoiseFault>,
    },
}

fn parse_fp(s: &str) -> anyhow::Result<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        anyhow::bail!("--demo-app must be 64 hex digits");
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)?;
    }
    Ok(out)
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Up { state, demo, listen, noise_fault, pki } => {
            gmhsm_sim::appliance::up(&gmhsm_sim::appliance::Options { state, pki, demo, listen, noise_fault })
        }
        Cmd::ClientCert { state, name, pki } => {
            gmhsm_sim::appliance::client_cert(&state, pki.as_deref(), &name).map(|p| println!("{}", p.display()))
        }
        Cmd::TripTamper { state } => gmhsm_sim::appliance::trip_tamper(&state),
        Cmd::Card { state, socket, init_demo, demo_app, noise_fault } => demo_app
            .as_deref()
            .map(parse_fp)
            .transpose()
            .and_then(|fp| gmhsm_sim::appliance::run_card(&state, &socket, init_demo, fp, noise_fault)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gmhsm-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}
