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
    Panel {
        #[arg(long)]
        state: PathBuf,
        /// Insert the card STATE/cards/NAME.img.
        #[arg(long, value_name = "NAME", group = "action")]
        insert: Option<String>,
        /// Take the card out of the reader.
        #[arg(long, group = "action")]
        remove: bool,
        /// Press keys: digits, OK, CANCEL, MENU, UP, DOWN, comma-separated (`12345678,OK`).
        #[arg(long, value_name = "KEYS", group = "action")]
        keys: Option<String>,
        /// Start a quorum login (key management).
        #[arg(long, group = "action")]
        login: bool,
        /// Start an operator login (one operator card: service stop / start, self-test).
        #[arg(long, group = "action")]
        operator_login: bool,
        /// Start an auditor login (one auditor card: approves audit export).
        #[arg(long, group = "action")]
        auditor_login: bool,
        /// End the quorum's authority or the operator's / auditor's login (then take the
        /// last card out).
        #[arg(long, group = "action")]
        logout: bool,
        /// Check a card: its PIN and a trial login on a session of its own (changes nothing).
        #[arg(long, group = "action")]
        card_check: bool,
        /// Change a card's PIN at the panel (old PIN, then the new one twice).
        #[arg(long, group = "action")]
        change_pin: bool,
        /// Unblock a locked card under the quorum logged in at the panel (the holder
        /// chooses a new PIN; the quorum's authority ends with it).
        #[arg(long, group = "action")]
        unblock_pin: bool,
        /// Zeroize the appliance under the quorum logged in at the panel, once the people
        /// at the rack confirm it on the panel (OK); every key is lost. The authority ends.
        #[arg(long, group = "action")]
        zeroize: bool,
        /// Revoke the application whose certificate (PEM) this is, under the quorum's
        /// authority held at the panel.
        #[arg(long, value_name = "CERT", group = "action")]
        revoke_app: Option<PathBuf>,
        /// Register the application whose certificate (PEM) this is, under the quorum's
        /// authority held at the panel.
        #[arg(long, value_name = "CERT", group = "action", requires = "name")]
        register_app: Option<PathBuf>,
        #[arg(long)]
        name: Option<String>,
        /// Domain bit mask for --register-app.
        #[arg(long, default_value_t = 1)]
        domains: u32,
        /// Capabilities for --register-app: sign,verify,encrypt,... or all.
        #[arg(long, default_value = "sign,verify")]
        caps: String,
        /// Most keys the application of --register-app may own in the card (default: the
        /// card's, 1024).
        #[arg(long)]
        max_keys: Option<u32>,
        /// Most bytes of the card's store its keys may take (default: the card's, 1 MiB).
        #[arg(long)]
        max_bytes: Option<u32>,
        /// Run a script: one command a line (insert NAME, remove, keys K,..., login,
        /// operator-login, auditor-login, logout, card-check, change-pin, unblock-pin, zeroize, wait-lcd TEXT,
        /// show); the LCD is printed after each.
        #[arg(long, value_name = "FILE", group = "action")]
        script: Option<PathBuf>,
        /// How long wait-lcd waits, in seconds.
        #[arg(long, default_value_t = 30)]
        wait: u64,
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
        Cmd::Panel {
            state,
            insert,
            remove,
            keys,
            login,
            operator_login,
            auditor_login,
            logout,
            card_check,
            change_pin,
            unblock_pin,
            zeroize,
            revoke_app,
            register_app,
            name,
            domains,
            caps,
            max_keys,
            max_bytes,
            script,
            wait,
        } => gmhsm_sim::panel::cli::main(&gmhsm_sim::panel::cli::PanelArgs {
            state,
            insert,
            remove,
            keys,
            login,
            operator_login,
            auditor_login,
            logout,
            card_check,
            change_pin,
            unblock_pin,
            zeroize,
            revoke_app,
            register_app,
            name,
            domains,
            caps,
            max_keys,
            max_bytes,
            script,
            wait_secs: wait,
        }),
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
