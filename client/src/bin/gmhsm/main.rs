//! `gmhsm`: the command-line client for application servers and appliance tools: keys,
//! signatures, encryption, MACs, hashes, random, envelopes, audit.

#![forbid(unsafe_code)]

mod args;
mod audit;
mod keys;
mod util;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use gmhsm_client::{
    CipherMech, Client, HashAlg, KeyAlg, KeyPairProtection, KeyRef, MacMech, Mechanism, PrivateKeyOut, Profile,
    Sm2Layout, Sm4Mode, WrapWith, pem, sm2_with_id,
};
use sha2::Digest;

use args::*;
use audit::audit;
use keys::{key_command, owner_text};
use util::*;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => ExitCode::from(f.report()),
    }
}

fn connect(cli: &Cli) -> Result<Client, Failure> {
    match (&cli.socket, &cli.profile) {
        (Some(socket), _) => Ok(Client::connect_local(socket, Duration::from_secs(30))?),
        (None, Some(profile)) => Ok(Client::connect(&Profile::load(profile)?)?),
        (None, None) => Err(Failure::Usage("give --profile or --socket".into())),
    }
}

/// How long an administrative command waits for the panel's approval.
const APPROVAL_WAIT: Duration = Duration::from_secs(300);

/// Connect for an administrative command. On a ceremony-initialized appliance the local
/// tool's session has no authority of its own: it asks for approval, prints the code the
/// front panel shows, and waits until the people holding the quorum's authority (or an
/// operator's login) press OK there — or refuse (CANCEL).
fn admin_connect(cli: &Cli) -> Result<Client, Failure> {
    let mut client = connect(cli)?;
    if cli.socket.is_none() {
        return Ok(client);
    }
    let st = client.admin_status()?;
    if !st.ceremony_initialized || st.authority || st.role.is_some() {
        return Ok(client);
    }
    let code = client.request_approval()?;
    eprintln!("approval code {code:04}: approve this tool at the front panel (OK)");
    let deadline = std::time::Instant::now() + APPROVAL_WAIT;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let st = client.admin_status()?;
        if st.authority || st.role.is_some() {
            return Ok(client);
        }
        if st.approval.is_none() {
            return Err(Failure::Local("refused at the front panel".into()));
        }
        if std::time::Instant::now() > deadline {
            return Err(Failure::Local("nobody approved this tool at the front panel in time".into()));
        }
    }
}

/// Connect for a command on the stored key `label`: SDF key indices, KEKs and their access
/// passwords (`sdf:` labels) are administration on the local socket, so the tool asks for
/// approval as [`admin_connect`] does; any other key needs none.
fn key_connect(cli: &Cli, label: &str) -> Result<Client, Failure> {
    if label.starts_with("sdf:") { admin_connect(cli) } else { connect(cli) }
}

/// Connect and, when a password is given, prove it for `key.label` on this connection.
fn connect_for(cli: &Cli, key: &KeyArgs) -> Result<Client, Failure> {
    let mut client = connect(cli)?;
    if let Some(pw) = &key.password {
        client.authorize_key(&key.label, pw.expose_secret().as_bytes())?;
    }
    Ok(client)
}

fn run(cli: Cli) -> Result<(), Failure> {
    // Local inputs are read before connecting, so a missing file costs no connection.
    match &cli.command {
        Command::Ping => {
            connect(&cli)?.ping()?;
            println!("pong");
        }
        Command::Status => print_status(&connect(&cli)?.status()?),
        Command::SelfTest => {
            let st = connect(&cli)?.self_test()?;
            print_status(&st);
            if st.error.is_some() {
                return Err(Failure::Invalid("self-test"));
            }
        }
        Command::Key(k) => key_command(&cli, k)?,
        Command::Sign { key, input, out, mech } => {
            let message = read_input(input)?;
            let mut client = connect_for(&cli, key)?;
            let mechanism = mechanism(&mut client, &key.label, mech)?;
            let sig = client.sign(&key.label, mechanism, &message)?;
            write_output(out.as_deref(), &sig)?;
        }
        Command::Verify { key, input, sig, mech } => {
            let message = read_input(input)?;
            let signature = read_input(sig)?;
            let mut client = connect(&cli)?;
            let mechanism = mechanism(&mut client, &key.label, mech)?;
            if !client.verify(&key.label, mechanism, &message, &signature)? {
                return Err(Failure::Invalid("signature"));
            }
            eprintln!("signature OK");
        }
        Command::Encrypt(c) => cipher(&cli, c, true)?,
        Command::Decrypt(c) => cipher(&cli, c, false)?,
        Command::Mac { key, input, out, mech, iv } => {
            let (m, data) = mac_mech(*mech, iv.as_deref(), read_input(input)?)?;
            let tag = connect_for(&cli, key)?.mac(KeyRef::Label(label(&key.label)?), m, &data)?;
            write_output(out.as_deref(), &tag)?;
        }
        Command::VerifyMac { key, input, mac, mech, iv } => {
            let tag = read_input(mac)?;
            let (m, data) = mac_mech(*mech, iv.as_deref(), read_input(input)?)?;
            if !connect_for(&cli, key)?.verify_mac(KeyRef::Label(label(&key.label)?), m, &data, &tag)? {
                return Err(Failure::Invalid("MAC"));
            }
            eprintln!("MAC OK");
        }
        Command::Hash { input, alg } => {
            let data = read_input(input)?;
            let alg = match alg {
                HashArg::Sm3 => HashAlg::Sm3,
                HashArg::Sha256 => HashAlg::Sha256,
            };
            println!("{}", to_hex(&connect(&cli)?.hash(alg, &data)?));
        }
        Command::Random { len, hex, out } => {
            let bytes = connect(&cli)?.random(*len)?;
            if *hex {
                write_output(out.as_deref(), format!("{}\n", to_hex(&bytes)).as_bytes())?;
            } else {
                write_output(out.as_deref(), &bytes)?;
            }
        }
        Command::Seal { to_label, to_pem, input, out } => {
            seal(&cli, to_label.as_deref(), to_pem.as_deref(), input, out)?
        }
        Command::Open { key, input, out } => open(&cli, key, input, out.as_deref())?,
        Command::Audit { from, audit_key } => audit(&cli, *from, audit_key.as_deref())?,
        Command::RegisterApp { cert, name, domains, caps, max_keys, max_bytes } => {
            let der = certificate_pem(cert)?;
            let fp: [u8; 32] = sha2::Sha256::digest(&der).into();
            let caps = parse_caps(caps)?;
            let quota = gmhsm_proto::AppQuota::from_options(*max_keys, *max_bytes);
            admin_connect(&cli)?.register_application_with_quota(fp, name, *domains, caps, quota)?;
            println!("registered {name} ({}) domains {domains:#x} caps {}", to_hex(&fp), caps_text(caps));
        }
        Command::RevokeApp { cert } => {
            let der = certificate_pem(cert)?;
            let fp: [u8; 32] = sha2::Sha256::digest(&der).into();
            admin_connect(&cli)?.revoke_application(fp)?;
            println!("revoked {}", to_hex(&fp));
        }
        Command::Service { action } => {
            let stop = *action == ServiceAction::Stop;
            admin_connect(&cli)?.set_service(stop)?;
            println!("service {}", if stop { "stopped" } else { "started" });
        }
    }
    Ok(())
}

fn print_status(info: &gmhsm_client::StatusInfo) {
    println!("initialized: {}", info.initialized);
    println!("state: {}", info.error.as_deref().unwrap_or("operational"));
    println!("keys: {}", info.keys);
    println!("service: {}", if info.service_stopped { "STOPPED" } else { "running" });
    println!("boots: {}", info.boots);
    println!("sessions: {}", info.sessions);
    println!("requests: {}", info.requests);
    println!("audit: records {}..{}", info.audit.first_seq, info.audit.last_seq);
    if let Some(seq) = info.audit.chain_break {
        println!("audit: CHAIN BROKEN at record {seq}");
    }
}

fn label(s: &str) -> Result<gmhsm_client::Label, Failure> {
    Ok(gmhsm_client::to_label(s)?)
}

fn alg_name(alg: KeyAlg) -> &'static str {
    match alg {
        KeyAlg::Sm2 => "sm2",
        KeyAlg::Rsa2048 => "rsa2048",
        KeyAlg::Rsa3072 => "rsa3072",
        KeyAlg::Rsa4096 => "rsa4096",
        KeyAlg::EcdsaP256 => "ecdsa-p256",
        KeyAlg::Sm4 => "sm4",
        KeyAlg::HmacSm3 => "hmac-sm3",
        _ => "unknown",
    }
}

/// The signature mechanism from `--mech`, or from the key's algorithm as the appliance
/// reports it.
fn mechanism(client: &mut Client, label: &str, args: &MechArgs) -> Result<Mechanism, Failure> {
    let sm2 = || match &args.id {
        Some(id) => sm2_with_id(id.as_bytes()).map_err(Failure::from),
        None => Ok(Mechanism::sm2_default()),
    };
    match args.mech {
        Some(MechArg::Sm2) => sm2(),
        Some(MechArg::Sm2Digest) => Ok(Mechanism::Sm2Digest),
        Some(MechArg::Rsa) => Ok(Mechanism::RsaPkcs1v15Sha256),
        Some(MechArg::RsaPss) => Ok(Mechanism::RsaPssSha256),
        Some(MechArg::Ecdsa) => Ok(Mechanism::EcdsaP256Sha256),
        None => match client.key_info(label)?.alg {
            KeyAlg::Sm2 => sm2(),
            KeyAlg::Rsa2048 | KeyAlg::Rsa3072 | KeyAlg::Rsa4096 => Ok(Mechanism::RsaPkcs1v15Sha256),
            KeyAlg::EcdsaP256 => Ok(Mechanism::EcdsaP256Sha256),
            other => Err(Failure::Usage(format!("key {label} is {}: it does not sign", alg_name(other)))),
        },
    }
}

/// The MAC mechanism, and the data to MAC: a CBC-MAC IV is XORed into the first block (the
/// appliance computes the standard zero-IV form; the MAC is the same).
fn mac_mech(m: MacArg, iv: Option<&str>, mut data: Vec<u8>) -> Result<(MacMech, Vec<u8>), Failure> {
    let mech = match (m, iv) {
        (MacArg::HmacSm3, None) => MacMech::HmacSm3,
        (MacArg::Sm4Cmac, None) => MacMech::Sm4Cmac,
        (MacArg::Sm4CbcMac, iv) => {
            let iv = iv.map(|s| hex_array::<16>("--iv", s)).transpose()?.unwrap_or([0; 16]);
            data.iter_mut().zip(iv).for_each(|(b, v)| *b ^= v);
            MacMech::Sm4CbcMac { iv: [0; 16] }
        }
        (_, Some(_)) => return Err(Failure::Usage("--iv goes with --mech sm4-cbc-mac only".into())),
    };
    Ok((mech, data))
}

/// Encrypt or decrypt a file with a stored key.
fn cipher(cli: &Cli, c: &CipherArgs, encrypt: bool) -> Result<(), Failure> {
    let data = read_input(&c.input)?;
    let mut client = connect_for(cli, &c.key)?;
    let arg = match c.mech {
        Some(m) => m,
        None => match client.key_info(&c.key.label)?.alg {
            KeyAlg::Sm2 => CipherArg::Sm2,
            KeyAlg::Rsa2048 | KeyAlg::Rsa3072 | KeyAlg::Rsa4096 => CipherArg::RsaOaep,
            KeyAlg::Sm4 => CipherArg::Sm4Gcm,
            other => {
                return Err(Failure::Usage(format!("key {} is {}: it does not encrypt", c.key.label, alg_name(other))));
            }
        },
    };
    // Without --iv the appliance draws the IV (nonce) and writes it before the ciphertext;
    // decryption reads it from there. With --iv the key needs the caller-iv capability.
    let sm4 = |card: Sm4Mode, given: fn([u8; 16]) -> Sm4Mode, pkcs7: bool| -> Result<CipherMech, Failure> {
        let iv = c.iv.as_deref().map(|s| hex_array::<16>("--iv", s)).transpose()?;
        Ok(CipherMech::Sm4 { mode: iv.map_or(card, given), pkcs7 })
    };
    let mech = match arg {
        CipherArg::Sm2 => CipherMech::Sm2 { layout: Sm2Layout::C1C3C2 },
        CipherArg::Sm2C1c2c3 => CipherMech::Sm2 { layout: Sm2Layout::C1C2C3 },
        CipherArg::Sm2Der => CipherMech::Sm2 { layout: Sm2Layout::Der },
        CipherArg::RsaPkcs1 => CipherMech::RsaPkcs1v15,
        CipherArg::RsaOaep => CipherMech::RsaOaepSha256,
        CipherArg::RsaRaw => CipherMech::RsaRaw,
        CipherArg::Sm4Ecb => CipherMech::Sm4 { mode: Sm4Mode::Ecb, pkcs7: true },
        CipherArg::Sm4Cbc => sm4(Sm4Mode::CbcCardIv, |iv| Sm4Mode::Cbc { iv }, true)?,
        CipherArg::Sm4Cfb => sm4(Sm4Mode::CfbCardIv, |iv| Sm4Mode::Cfb { iv }, false)?,
        CipherArg::Sm4Ofb => sm4(Sm4Mode::OfbCardIv, |iv| Sm4Mode::Ofb { iv }, false)?,
        CipherArg::Sm4Ctr => sm4(Sm4Mode::CtrCardIv, |iv| Sm4Mode::Ctr { iv }, false)?,
        CipherArg::Sm4Gcm => match c.iv.as_deref() {
            Some(s) => CipherMech::Sm4Gcm { nonce: hex_array::<12>("--iv", s)?, aad: Vec::new() },
            None => CipherMech::Sm4GcmCardNonce { aad: Vec::new() },
        },
    };
    let key = KeyRef::Label(label(&c.key.label)?);
    if encrypt {
        write_output(c.out.as_deref(), &client.encrypt(key, mech, &data)?)
    } else {
        write_output(c.out.as_deref(), client.decrypt(key, mech, &data)?.expose_secret())
    }
}

/// The public-key mechanism for wrapping a session key to a key of `alg`.
fn wrap_mech(alg: KeyAlg) -> Result<CipherMech, Failure> {
    match alg {
        KeyAlg::Sm2 => Ok(CipherMech::Sm2 { layout: Sm2Layout::C1C3C2 }),
        KeyAlg::Rsa2048 | KeyAlg::Rsa3072 | KeyAlg::Rsa4096 => Ok(CipherMech::RsaOaepSha256),
        other => Err(Failure::Usage(format!("a {} key cannot carry an envelope", alg_name(other)))),
    }
}

fn seal(
    cli: &Cli,
    to_label: Option<&str>,
    to_pem: Option<&std::path::Path>,
    input: &std::path::Path,
    out: &std::path::Path,
) -> Result<(), Failure> {
    let data = read_input(input)?;
    let external = to_pem.map(public_key_pem).transpose()?;
    let mut client = connect(cli)?;
    let wrap = match (to_label, external) {
        (Some(l), None) => {
            let alg = client.key_info(l)?.alg;
            WrapWith::Key { label: label(l)?, mechanism: wrap_mech(alg)? }
        }
        (None, Some(spki)) => {
            // The SM2 curve OID 1.2.156.10197.1.301 marks an SM2 key; anything else is RSA.
            let sm2_oid = [0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x82, 0x2d];
            let alg = if spki.windows(sm2_oid.len()).any(|w| w == sm2_oid) { KeyAlg::Sm2 } else { KeyAlg::Rsa2048 };
            WrapWith::External { spki_der: spki, mechanism: wrap_mech(alg)? }
        }
        _ => return Err(Failure::Usage("give exactly one of --to-label and --to-pem".into())),
    };
    let sk = client.generate_session_key(wrap)?;
    // nonce (12) ‖ ciphertext ‖ tag (16), the nonce drawn by the appliance.
    let sealed = client.encrypt(KeyRef::Session(sk.handle), CipherMech::Sm4GcmCardNonce { aad: Vec::new() }, &data)?;
    let mut file = (sk.wrapped.len() as u32).to_be_bytes().to_vec();
    file.extend_from_slice(&sk.wrapped);
    file.extend_from_slice(&sealed);
    write_output(Some(out), &file)
}

fn open(cli: &Cli, key: &KeyArgs, input: &std::path::Path, out: Option<&std::path::Path>) -> Result<(), Failure> {
    let file = read_input(input)?;
    let bad = || Failure::Usage(format!("{} is not an envelope made by `gmhsm seal`", input.display()));
    let len = u32::from_be_bytes(file.get(..4).ok_or_else(bad)?.try_into().map_err(|_| bad())?) as usize;
    let wrapped = file.get(4..4 + len).ok_or_else(bad)?;
    let sealed = file.get(4 + len..).filter(|s| s.len() >= 12 + 16).ok_or_else(bad)?;
    let mut client = connect_for(cli, key)?;
    let alg = client.key_info(&key.label)?.alg;
    let handle = client.import_session_key(&key.label, wrap_mech(alg)?, wrapped)?;
    let plain = client.decrypt(KeyRef::Session(handle), CipherMech::Sm4GcmCardNonce { aad: Vec::new() }, sealed)?;
    write_output(out, plain.expose_secret())
}
