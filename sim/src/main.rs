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
        /// Initialize a factory-fresh appliance through the init ceremony at the front panel
        /// with virtual demo cards (PINs printed once and written to STATE/cards/PINS.txt),
        /// register the demo application under a quorum login, and write STATE/client.toml
        /// for the `gmhsm` CLI.
        #[arg(long)]
        demo: bool,
        /// Demo administrator cards (n).
        #[arg(long, default_value_t = 3)]
        cards: u8,
        /// Demo login quorum (k, 2 <= k < n).
        #[arg(long, default_value_t = 2)]
        quorum: u8,
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
        /// The front panel's card reader: `sim` (in-process, the default) or `pcsc` (virtual
        /// cards on the real pcscd through the vpcd reader; needs the `pcsc` feature).
        #[arg(long, default_value = "sim")]
        reader: gmhsm_sim::panel::ReaderKind,
        /// Connections the private link accepts, in total and per client certificate (default:
        /// the daemon's, 256 and 16). Raise the process's open-file limit to match.
        #[arg(long)]
        max_connections: Option<usize>,
        /// Microseconds the daemon's event loop and the card's link threads keep polling
        /// without sleeping after answering, before they block (0: off). Saves CPU wake-ups
        /// on unpipelined requests at the cost of up to a core spinning while traffic flows.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(0..=10_000))]
        busy_poll_us: u64,
        /// The card uses its portable code paths only, as on a CPU without AVX-512 (IFMA,
        /// multi-buffer SM3, GFNI SM4): to measure what such a machine gets.
        #[arg(long)]
        portable_kernels: bool,
        /// Serve the card already listening on this socket (e.g. `gmhsm-card` on its board)
        /// instead of starting a simulated one: the simulated panel, the demo ceremony and
        /// the daemon run against a real card runtime.
        #[arg(long, value_name = "SOCKET")]
        card_socket: Option<PathBuf>,
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
    /// Look at the running appliance's front panel (the LCD, framed) and act on it: insert or
    /// remove a card from STATE/cards/, press keys, start a quorum login, run a script.
    Panel(gmhsm_sim::panel::cli::PanelArgs),
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
        noise_fault: Option<NoiseFault>,
        /// Microseconds a link's thread keeps reading without blocking after answering.
        #[arg(long, default_value_t = 0)]
        busy_poll_us: u64,
        #[arg(long)]
        portable_kernels: bool,
    },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Up {
            state,
            demo,
            cards,
            quorum,
            listen,
            noise_fault,
            pki,
            reader,
            max_connections,
            busy_poll_us,
            portable_kernels,
            card_socket,
        } => gmhsm_sim::appliance::up(&gmhsm_sim::appliance::Options {
            state,
            pki,
            demo,
            listen,
            noise_fault,
            cards,
            quorum,
            reader,
            max_connections,
            busy_poll: std::time::Duration::from_micros(busy_poll_us),
            portable_kernels,
            card_socket,
        }),
        Cmd::Panel(args) => gmhsm_sim::panel::cli::main(&args),
        Cmd::ClientCert { state, name, pki } => {
            gmhsm_sim::appliance::client_cert(&state, pki.as_deref(), &name).map(|p| println!("{}", p.display()))
        }
        Cmd::TripTamper { state } => gmhsm_sim::appliance::trip_tamper(&state),
        Cmd::Card { state, socket, noise_fault, busy_poll_us, portable_kernels } => {
            let busy_poll = std::time::Duration::from_micros(busy_poll_us);
            gmhsm_sim::appliance::run_card(&state, &socket, noise_fault, busy_poll, portable_kernels)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gmhsm-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}
