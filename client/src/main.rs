//! `gmhsm`: the command-line client for application servers (keys, sign, verify, status).

#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use gmhsm_client::{Client, ClientError, KeyAlg, Mechanism, Profile, pem, sm2_with_id};
use gmhsm_proto::frame::MAX_MESSAGE_LEN;

const EXIT_CODES: &str = "\
Exit status:
  0  success (for verify: the signature is valid)
  1  verify: the signature is INVALID
  2  usage error (bad arguments, label over 64 bytes, input over 1 MiB)
  3  cannot connect to the appliance, or TLS failure
  4  the appliance refused the request (its status text and code are printed)
  5  local I/O or configuration error (file not found, unreadable profile or credentials)
  6  protocol error (the appliance's answer made no sense)";

/// Talk to a gmhsm appliance: generate and use keys that never leave its crypto card.
#[derive(Parser, Debug)]
#[command(name = "gmhsm", version, after_help = EXIT_CODES)]
struct Cli {
    /// Profile file (TOML: address, server_name, ca_cert, client_cert, client_key).
    #[arg(long, env = "GMHSM_PROFILE")]
    profile: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check that the appliance and its card answer.
    Ping,
    /// Show the card's state and counters.
    Status,
    /// Manage keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Sign a file; the mechanism follows the key's algorithm.
    Sign {
        #[arg(long)]
        label: String,
        /// File to sign (at most 1 MiB).
        #[arg(long = "in")]
        input: PathBuf,
        /// Where to write the signature (DER for SM2, raw PKCS#1 v1.5 for RSA); stdout if absent.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        mech: MechArgs,
    },
    /// Verify a signature over a file; exit 0 if valid, 1 if invalid.
    Verify {
        #[arg(long)]
        label: String,
        #[arg(long = "in")]
        input: PathBuf,
        /// The signature file.
        #[arg(long)]
        sig: PathBuf,
        #[command(flatten)]
        mech: MechArgs,
    },
}

#[derive(Subcommand, Debug)]
enum KeyCommand {
    /// Generate a key pair inside the card.
    Generate {
        #[arg(long, value_enum)]
        alg: AlgArg,
        #[arg(long)]
        label: String,
    },
    /// Export a public key (SubjectPublicKeyInfo): DER, or PEM with --pem.
    Export {
        #[arg(long)]
        label: String,
        #[arg(long)]
        pem: bool,
        /// Output file; stdout if absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List the keys visible to this client.
    List,
    /// Delete a key.
    Delete {
        #[arg(long)]
        label: String,
    },
}

#[derive(clap::Args, Debug)]
struct MechArgs {
    /// Mechanism; by default chosen from the key's algorithm (asked from the appliance).
    #[arg(long, value_enum)]
    mech: Option<MechArg>,
    /// SM2 distinguishing ID (default 1234567812345678).
    #[arg(long)]
    id: Option<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum AlgArg {
    Sm2,
    Rsa2048,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum MechArg {
    /// SM2 signature with SM3.
    Sm2,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rsa,
}

/// A failure, with the exit code it maps to.
enum Failure {
    Client(ClientError),
    Local(String),
    Usage(String),
    SignatureInvalid,
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Client(e)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::SignatureInvalid) => {
            eprintln!("signature INVALID");
            ExitCode::from(1)
        }
        Err(Failure::Usage(msg)) => {
            eprintln!("gmhsm: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Local(msg)) => {
            eprintln!("gmhsm: {msg}");
            ExitCode::from(5)
        }
        Err(Failure::Client(e)) => {
            eprintln!("gmhsm: {e}");
            ExitCode::from(match e {
                ClientError::Io(_) | ClientError::Tls(_) => 3,
                ClientError::Status(_) => 4,
                ClientError::Config(_) => 5,
                ClientError::InvalidArgument(_) => 2,
                _ => 6,
            })
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let profile = Profile::load(&cli.profile)?;
    // Read local inputs before connecting, so a missing file costs no connection.
    match cli.command {
        Command::Ping => {
            connect(&profile)?.ping()?;
            println!("pong");
        }
        Command::Status => {
            let info = connect(&profile)?.status()?;
            println!("initialized: {}", info.initialized);
            println!("state: {}", info.error.as_deref().unwrap_or("operational"));
            println!("keys: {}", info.keys);
            println!("boots: {}", info.boots);
        }
        Command::Key(KeyCommand::Generate { alg, label }) => {
            let alg = match alg {
                AlgArg::Sm2 => KeyAlg::Sm2,
                AlgArg::Rsa2048 => KeyAlg::Rsa2048,
            };
            connect(&profile)?.generate_key(&label, alg)?;
            println!("{label} {}", alg_name(alg));
        }
        Command::Key(KeyCommand::Export {
            label,
            pem: as_pem,
            out,
        }) => {
            let (_, spki) = connect(&profile)?.export_public_key(&label)?;
            let bytes = if as_pem {
                pem::public_key(&spki).into_bytes()
            } else {
                spki
            };
            write_output(out.as_deref(), &bytes)?;
        }
        Command::Key(KeyCommand::List) => {
            for (label, alg) in connect(&profile)?.list_keys()? {
                println!("{label}\t{}", alg_name(alg));
            }
        }
        Command::Key(KeyCommand::Delete { label }) => {
            connect(&profile)?.delete_key(&label)?;
            println!("deleted {label}");
        }
        Command::Sign {
            label,
            input,
            out,
            mech,
        } => {
            let message = read_input(&input)?;
            let mut client = connect(&profile)?;
            let mechanism = mechanism(&mut client, &label, &mech)?;
            let sig = client.sign(&label, mechanism, &message)?;
            write_output(out.as_deref(), &sig)?;
        }
        Command::Verify {
            label,
            input,
            sig,
            mech,
        } => {
            let message = read_input(&input)?;
            let signature = read_input(&sig)?;
            let mut client = connect(&profile)?;
            let mechanism = mechanism(&mut client, &label, &mech)?;
            if !client.verify(&label, mechanism, &message, &signature)? {
                return Err(Failure::SignatureInvalid);
            }
            eprintln!("signature OK");
        }
    }
    Ok(())
}

fn connect(profile: &Profile) -> Result<Client, Failure> {
    Ok(Client::connect(profile)?)
}

/// The mechanism from `--mech`, or from the key's algorithm as the appliance reports it.
fn mechanism(client: &mut Client, label: &str, args: &MechArgs) -> Result<Mechanism, Failure> {
    let sm2 = || match &args.id {
        Some(id) => sm2_with_id(id.as_bytes()).map_err(Failure::from),
        None => Ok(Mechanism::sm2_default()),
    };
    match args.mech {
        Some(MechArg::Sm2) => sm2(),
        Some(MechArg::Rsa) => Ok(Mechanism::RsaPkcs1v15Sha256),
        None => match client.export_public_key(label)?.0 {
            KeyAlg::Sm2 => sm2(),
            KeyAlg::Rsa2048 => Ok(Mechanism::RsaPkcs1v15Sha256),
            _ => Err(Failure::Usage(format!(
                "key {label} has an algorithm this client cannot sign with; use --mech"
            ))),
        },
    }
}

fn alg_name(alg: KeyAlg) -> &'static str {
    match alg {
        KeyAlg::Sm2 => "sm2",
        KeyAlg::Rsa2048 => "rsa2048",
        _ => "unknown",
    }
}

/// Read a whole input file, refusing anything over the protocol's message bound.
fn read_input(path: &Path) -> Result<Vec<u8>, Failure> {
    let file = File::open(path)
        .map_err(|e| Failure::Local(format!("cannot open {}: {e}", path.display())))?;
    let mut data = Vec::new();
    file.take(MAX_MESSAGE_LEN as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| Failure::Local(format!("cannot read {}: {e}", path.display())))?;
    if data.len() > MAX_MESSAGE_LEN {
        return Err(Failure::Usage(format!(
            "{} is larger than {MAX_MESSAGE_LEN} bytes, the most the appliance accepts in one request",
            path.display()
        )));
    }
    Ok(data)
}

fn write_output(out: Option<&Path>, bytes: &[u8]) -> Result<(), Failure> {
    match out {
        Some(path) => std::fs::write(path, bytes)
            .map_err(|e| Failure::Local(format!("cannot write {}: {e}", path.display()))),
        None => {
            let mut stdout = io::stdout().lock();
            stdout
                .write_all(bytes)
                .and_then(|()| stdout.flush())
                .map_err(|e| Failure::Local(format!("cannot write to stdout: {e}")))
        }
    }
}
