//! `gmhsm-card`: the appliance's card runtime on its Linux board. Reads the board's devices
//! from `appliance.toml` (`gmhsm-board`: `/dev/hwrng`, flash on an `O_DIRECT` file or an MTD
//! device, the device master key sealed to the TPM or in an nvmem cell, the tamper switch),
//! boots the firmware on them and serves the card link on a Unix socket (mode 0600) that
//! `gmhsmd` connects to. A factory-fresh card waits for the init ceremony at the front panel;
//! a card in its error state (a failed self-test, a lost master key) still serves, answering
//! every request with the error, so the panel and `gmhsm status` can say why.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use gmhsm_board::LinuxBoard;
use gmhsm_card::ServeOptions;
use gmhsm_firmware::Hsm;

#[derive(Parser)]
#[command(name = "gmhsm-card", version, about = "The gmhsm crypto card runtime on the appliance's Linux board")]
struct Cli {
    /// The board's devices (docs/deploy.md, "Devices and appliance.toml").
    #[arg(long, default_value = "/etc/gmhsm/appliance.toml")]
    config: PathBuf,
    /// The card link's Unix socket (created mode 0600; gmhsmd's `card_socket`).
    #[arg(long, default_value = "/run/gmhsm/card.sock")]
    socket: PathBuf,
    /// After answering, a link keeps reading without sleeping for this many microseconds
    /// (0, the default: it sleeps at once). Lowers latency, costs CPU. At most 10,000.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    busy_poll_us: u32,
    /// Use the portable code paths even on a CPU with AVX-512 (for comparisons and fault
    /// hunting; the answers are the same).
    #[arg(long)]
    portable_kernels: bool,
}

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    if cli.portable_kernels {
        gmhsm_card::use_portable_kernels();
        log::info!("card: portable kernels only (--portable-kernels)");
    }
    let board = LinuxBoard::open_path(&cli.config)
        .with_context(|| format!("opening the card's devices from {}", cli.config.display()))?;
    let hsm = Hsm::boot(board.into_devices());
    let st = hsm.status();
    match &st.error {
        Some(why) => log::error!("card: ERROR STATE: {why}"),
        None if st.initialized => log::info!("card: operational, {} keys, boot {}", st.keys, st.boots),
        None => log::info!("card: factory state, waiting for the init ceremony"),
    }
    let opts =
        ServeOptions { busy_poll: Duration::from_micros(u64::from(cli.busy_poll_us)), ..ServeOptions::default() };
    gmhsm_card::serve(hsm, &cli.socket, opts).with_context(|| format!("serving {}", cli.socket.display()))?;
    Ok(())
}
