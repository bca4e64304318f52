//! `gmhsm-bench`: drive a gmhsm appliance over the private link with N connections and a
//! pipelining depth; report operations per second and latency percentiles per operation,
//! beside the references measured in the same run on the same machine: the raw primitive
//! in-process on one core and on every core at once (the limit for the full path), OpenSSL 3's
//! `openssl speed`, and a bare 64-byte echo between two processes.
//!
//! With `--appliance-pid` (the card and daemon processes) it also reads their CPU time over
//! each run and reports the appliance's CPU microseconds per operation and its efficiency:
//! the raw primitive's cost on one core divided by that (1.0: the appliance spends nothing
//! beyond the primitive). The load generator runs on the same cores, so the rate alone
//! understates what the appliance would do with the machine to itself.
//!
//! Latency: with depth 1 each sample is one request's round trip; with depth D a sample is
//! the time from writing a batch of D requests to reading its last answer (what a pipelining
//! client waits for).

mod flood;
mod ops;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use gmhsm_client::{Client, Profile};

use ops::Op;

#[derive(Parser)]
#[command(name = "gmhsm-bench", version, about = "Load generator for a gmhsm appliance, with same-run references")]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// Client profile of the appliance (e.g. state/client.toml).
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Connections, each driven by its own thread.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 16)]
    depth: usize,
    /// Messages per request for the batch operations (`SignBatch`), 1 to 256.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=256))]
    batch: u16,
    /// Load clients wait for answers by polling for up to this many microseconds before
    /// blocking (`Client::set_busy_poll`); 0, the default: they block at once, like the echo
    /// reference. At most 10,000.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    busy_poll_us: u32,
    /// Seconds per operation.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Operations to measure (default: all).
    #[arg(long = "op", value_enum)]
    ops: Vec<Op>,
    /// Skip the in-process and OpenSSL references.
    #[arg(long)]
    no_reference: bool,
    /// Instead of a load: open this many connections, keep them idle, and report the daemon's
    /// memory per connection (needs --daemon-pid, and open-file limits raised on both sides).
    /// At most 1,000,000.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    idle: Option<u32>,
    /// The daemon's process id, to read its resident memory from /proc.
    #[arg(long)]
    daemon_pid: Option<u32>,
    /// Open this many extra connections first and keep them idle (authenticated, one Ping
    /// each) during the whole load: what the appliance does with thousands of clients attached.
    /// At most 1,000,000 (more than any open-file limit allows).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    hold: u32,
    /// Instead of a load: open this many silent connections from 127.0.0.2-5 and count how
    /// many of five fresh good clients (and local-socket Pings) are served (`flood.rs`).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    flood: Option<u32>,
    /// With --flood: every third flooding connection sends a garbage TLS record.
    #[arg(long)]
    garbage: bool,
    /// With --flood: open the connections at this many a second for --seconds.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    flood_rate: Option<u32>,
    /// With --flood: also count Pings on the appliance's local socket.
    #[arg(long)]
    local_socket: Option<PathBuf>,
    /// Measure the raw references on the card's portable paths, as on a CPU without AVX-512
    /// (`gmhsm_card::use_portable_kernels`); use with `gmhsm-sim up --portable-kernels`.
    #[arg(long)]
    portable_kernels: bool,
    /// Processes of the appliance (card, daemon; repeat the option) whose CPU time per
    /// operation is reported.
    #[arg(long = "appliance-pid")]
    appliance_pids: Vec<u32>,
}

#[derive(Subcommand)]
enum Cmd {
    /// (internal) the echo peer for the bare round-trip reference.
    #[command(hide = true)]
    EchoServer { socket: PathBuf },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.portable_kernels {
        gmhsm_card::use_portable_kernels();
    }
    if let Some(Cmd::EchoServer { socket }) = &cli.cmd {
        return echo_server(socket);
    }
    let profile = Profile::load(cli.profile.as_ref().context("--profile is required")?)?;
    if let Some(n) = cli.idle {
        return idle(&profile, n as usize, cli.daemon_pid.context("--idle needs --daemon-pid")?);
    }
    if let Some(connections) = cli.flood {
        let f = flood::Flood {
            connections,
            garbage: cli.garbage,
            rate: cli.flood_rate,
            seconds: cli.seconds,
            local_socket: cli.local_socket.as_deref(),
        };
        return flood::run(&profile, &f);
    }
    let ops: Vec<Op> = if cli.ops.is_empty() { ops::ALL.to_vec() } else { cli.ops.clone() };
    let held = hold_connections(&profile, cli.hold)?;
    let mut setup = Client::connect(&profile)?;
    let sig = ops::setup(&mut setup)?;
    let ct = ops::decrypt_input(&mut setup)?;
    drop(setup);

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    print_header(&cli, cores)?;
    // Unpipelined: the echo reference again right before each operation (it moves between runs
    // on a virtual machine), and the latency target beside the p50.
    let unpipelined = cli.connections == 1 && cli.depth == 1 && !cli.no_reference;
    let mut targets = Vec::new();
    for op in ops {
        let echo = if unpipelined { Some(echo_round_trip()?.0) } else { None };
        let (r, raw) = measure(&profile, op, &cli, &sig, &ct, cores)?;
        if let Some(echo) = echo {
            // The raw operation's time on one core (0 for Ping, which has none).
            let raw_us = raw.map_or(0.0, |x| 1e6 / x);
            targets.push(latency_target(op, r.p50, raw_us, echo));
        }
    }
    for line in targets {
        println!("{line}");
    }
    drop(held);
    Ok(())
}

/// `--hold`: idle connections, each answered one ping, kept open while the load runs.
fn hold_connections(profile: &Profile, hold: u32) -> anyhow::Result<Vec<Client>> {
    let mut held = Vec::with_capacity(hold as usize);
    for i in 0..hold {
        let mut c = Client::connect(profile).with_context(|| format!("held connection {i}"))?;
        c.ping().with_context(|| format!("held connection {i}"))?;
        held.push(c);
    }
    if hold > 0 {
        println!("# {} idle connections held open during the load", held.len());
    }
    Ok(held)
}

/// The run's parameters, the bare echo reference and the table's column heads.
fn print_header(cli: &Cli, cores: usize) -> anyhow::Result<()> {
    println!(
        "# gmhsm-bench: {} connections x depth {}, {} s per operation{}",
        cli.connections,
        cli.depth,
        cli.seconds,
        if cli.busy_poll_us > 0 {
            format!(", clients poll {} us before blocking", cli.busy_poll_us)
        } else {
            String::new()
        }
    );
    if !cli.no_reference {
        let (p50, p99) = echo_round_trip()?;
        println!("# bare 64-byte echo between two processes, blocking: p50 {p50:.1} us, p99 {p99:.1} us");
    }
    println!(
        "# raw 1c: the primitive in this process on one core; raw {cores}c: on {cores} threads at once; \
         ratio = appliance / raw {cores}c{}",
        if cli.appliance_pids.is_empty() {
            String::new()
        } else {
            "; cpu: appliance CPU us per op (card + daemon); eff = raw 1c cost / cpu".into()
        }
    );
    println!(
        "{:<12} {:>11} {:>8} {:>8} {:>9} {:>10} {:>10} {:>6} {:>7} {:>5} {:>10}",
        "op",
        "appliance/s",
        "p50 us",
        "p99 us",
        "p99.9 us",
        "raw 1c/s",
        format!("raw {cores}c/s"),
        "ratio",
        "cpu us",
        "eff",
        "openssl/s"
    );
    Ok(())
}

/// Drive one operation against the appliance, measure its references, and print its row.
/// Returns the run and the raw one-core rate (for the latency target).
fn measure(
    profile: &Profile,
    op: Op,
    cli: &Cli,
    sig: &[u8],
    ct: &[u8],
    cores: usize,
) -> anyhow::Result<(Run, Option<f64>)> {
    let cpu0 = cpu_seconds(&cli.appliance_pids);
    let r = drive(&profile, op, &cli, &sig, &ct)?;
    let cpu = match (cpu0, cpu_seconds(&cli.appliance_pids)) {
        (Some(a), Some(b)) if !cli.appliance_pids.is_empty() => Some((b - a) / (r.rate * r.elapsed) * 1e6),
        _ => None,
    };
    let (raw, raw_all, ossl) = if cli.no_reference {
        (None, None, None)
    } else {
        (
            reference(op, cli.seconds, cli.batch.into()),
            reference_all(op, cli.seconds, cores, cli.batch.into()),
            openssl(op),
        )
    };
    let unit = |v: f64| {
        let b = ops::payload(op);
        if b > 0 { format!("{:.1}MB", v * b as f64 / 1e6) } else { format!("{v:.0}") }
    };
    println!(
        "{:<12} {:>11} {:>8.0} {:>8.0} {:>9.0} {:>10} {:>10} {:>6} {:>7} {:>5} {:>10}{}",
        format!("{op:?}"),
        unit(r.rate),
        r.p50,
        r.p99,
        r.p999,
        raw.map_or("-".into(), unit),
        raw_all.map_or("-".into(), unit),
        raw_all.map_or("-".into(), |x| format!("{:.2}", r.rate / x)),
        cpu.map_or("-".into(), |c| format!("{c:.1}")),
        match (cpu, raw) {
            (Some(c), Some(x)) => format!("{:.2}", 1e6 / x / c),
            _ => "-".into(),
        },
        ossl.map_or("-".into(), |(v, bytes)| if bytes { format!("{:.1}MB", v / 1e6) } else { format!("{v:.0}") }),
        if r.errors > 0 { format!("  ({} errors: {})", r.errors, r.first_error) } else { String::new() },
    );
    Ok((r, raw))
}

/// The unpipelined target for one operation: p50 at most the raw operation plus twice
/// the bare echo measured just before it.
fn latency_target(op: Op, p50: f64, raw_us: f64, echo: f64) -> String {
    let target = raw_us + 2.0 * echo;
    format!(
        "# {op:?}: p50 {p50:.1} us, target raw {raw_us:.1} + 2 x echo {echo:.1} = {target:.1} us: {}",
        if p50 <= target { "met" } else { "not met" }
    )
}

struct Run {
    /// Seconds the load ran.
    elapsed: f64,
    rate: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    errors: u64,
    first_error: String,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Drive one operation with every connection for the configured time.
fn drive(profile: &Profile, op: Op, cli: &Cli, sig: &[u8], ct: &[u8]) -> anyhow::Result<Run> {
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for t in 0..cli.connections {
        let (profile, stop, counter) = (profile.clone(), stop.clone(), counter.clone());
        let (sig, ct, depth, batch) = (sig.to_vec(), ct.to_vec(), cli.depth, cli.batch as usize);
        let weight = ops::per_request(op, batch) as u64;
        let spin_us = u64::from(cli.busy_poll_us);
        handles.push(std::thread::spawn(move || -> anyhow::Result<(u64, u64, Vec<f64>, String)> {
            let mut client = Client::connect(&profile)?;
            client.set_busy_poll(Duration::from_micros(spin_us));
            let (mut ok, mut errors, mut lat, mut first) = (0u64, 0u64, Vec::new(), String::new());
            while !stop.load(Ordering::Relaxed) {
                let batch = (0..depth)
                    .map(|_| {
                        ops::request(op, &sig, &ct, (t as u64) << 40 | counter.fetch_add(1, Ordering::Relaxed), batch)
                    })
                    .collect();
                let t0 = Instant::now();
                let answers = client.pipeline(batch)?;
                lat.push(t0.elapsed().as_secs_f64() * 1e6);
                for a in answers {
                    match a {
                        Ok(_) => ok += weight,
                        Err(e) => {
                            errors += weight;
                            if first.is_empty() {
                                first = e.to_string();
                            }
                        }
                    }
                }
            }
            Ok((ok, errors, lat, first))
        }));
    }
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(cli.seconds));
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut errors, mut lat, mut first_error) = (0, 0, Vec::new(), String::new());
    for h in handles {
        let (o, e, l, f) = h.join().map_err(|_| anyhow::anyhow!("a load thread panicked"))??;
        ok += o;
        errors += e;
        lat.extend(l);
        if first_error.is_empty() {
            first_error = f;
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.total_cmp(b));
    Ok(Run {
        elapsed,
        rate: ok as f64 / elapsed,
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
        p999: percentile(&lat, 0.999),
        errors,
        first_error,
    })
}

/// The raw primitive on one core, in this process (batch operations `batch` at a time, as
/// the card computes them).
fn reference(op: Op, seconds: f64, batch: usize) -> Option<f64> {
    let (mut f, per_call) = ops::raw(op, batch)?;
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed().as_secs_f64() < seconds.min(2.0) {
        f();
        n += per_call;
    }
    Some(n as f64 / t0.elapsed().as_secs_f64())
}

/// The raw primitive on `threads` threads at once (each with its own state), summed.
fn reference_all(op: Op, seconds: f64, threads: usize, batch: usize) -> Option<f64> {
    let handles: Vec<_> = (0..threads).map(|_| std::thread::spawn(move || reference(op, seconds, batch))).collect();
    let rates: Vec<Option<f64>> = handles.into_iter().map(|h| h.join().ok().flatten()).collect();
    rates.into_iter().sum()
}

/// User + system CPU seconds of these processes (all their threads), from /proc; `None` if
/// one cannot be read. Linux reports them in USER_HZ = 100 ticks per second.
fn cpu_seconds(pids: &[u32]) -> Option<f64> {
    let mut ticks = 0u64;
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the parenthesised command name: state is field 3; utime, stime 14, 15.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        ticks += f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    }
    Some(ticks as f64 / 100.0)
}

/// OpenSSL 3's rate for the operation: (value, is bytes per second).
fn openssl(op: Op) -> Option<(f64, bool)> {
    let (args, word) = ops::openssl_speed(op)?;
    let out = std::process::Command::new("openssl").args(args).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.contains(word))?;
    let nums: Vec<f64> = line
        .split_whitespace()
        .filter_map(|w| {
            w.trim_end_matches('k').parse::<f64>().ok().map(|v| if w.ends_with('k') { v * 1000.0 } else { v })
        })
        .collect();
    match op {
        // "... sign verify sign/s verify/s"
        Op::Sm2Sign | Op::Sm2SignBatch | Op::Rsa2048Sign | Op::EcdsaSign | Op::EcdsaSignBatch => {
            nums.iter().rev().nth(1).map(|v| (*v, false))
        }
        Op::Sm2Verify => nums.last().map(|v| (*v, false)),
        // The 65536-byte column in bytes/s.
        _ => nums.last().map(|v| (*v, true)),
    }
}

/// p50 and p99 (µs) of a blocking 64-byte round trip to a child process over a Unix socket.
fn echo_round_trip() -> anyhow::Result<(f64, f64)> {
    let path = std::env::temp_dir().join(format!("gmhsm-bench-echo-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let mut child = std::process::Command::new(std::env::current_exe()?).arg("echo-server").arg(&path).spawn()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut s = loop {
        match UnixStream::connect(&path) {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(e.into()),
        }
    };
    let (msg, mut buf) = ([0x42u8; 64], [0u8; 64]);
    let mut lat = Vec::new();
    for _ in 0..5000 {
        let t0 = Instant::now();
        s.write_all(&msg)?;
        s.read_exact(&mut buf)?;
        lat.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    drop(s);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&path);
    lat.sort_by(|a, b| a.total_cmp(b));
    Ok((percentile(&lat, 0.5), percentile(&lat, 0.99)))
}

/// Resident memory of a process in bytes (VmRSS).
fn rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")?;
    Ok(kb * 1024)
}

/// Hold `n` idle, authenticated connections and report the daemon's memory per connection.
fn idle(profile: &Profile, n: usize, pid: u32) -> anyhow::Result<()> {
    let before = rss(pid)?;
    let t0 = Instant::now();
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        // Each connect completes a TLS handshake (signed in the card) and a Ping.
        held.push(Client::connect(profile).with_context(|| format!("connection {i}"))?);
    }
    let opened = t0.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let after = rss(pid)?;
    // Every connection still answers.
    let mut alive = 0;
    for c in held.iter_mut().step_by((n / 50).max(1)) {
        if c.ping().is_ok() {
            alive += 1;
        }
    }
    let per = (after.saturating_sub(before)) as f64 / n as f64;
    println!(
        "# {n} idle connections opened in {:.1} s; daemon RSS {:.1} MiB -> {:.1} MiB: {:.0} bytes per connection; {alive} sampled connections still answer",
        opened.as_secs_f64(),
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        per
    );
    Ok(())
}

fn echo_server(path: &PathBuf) -> anyhow::Result<()> {
    let listener = UnixListener::bind(path)?;
    let (mut s, _) = listener.accept()?;
    let mut buf = [0u8; 64];
    while s.read_exact(&mut buf).is_ok() {
        s.write_all(&buf)?;
    }
    Ok(())
}
