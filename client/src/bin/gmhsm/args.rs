//! The command line of `gmhsm`: every subcommand and option, with the help a newcomer reads.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub const EXIT_CODES: &str = "\
Exit status:
  0  success (for verify / verify-mac: the signature or MAC is valid)
  1  verify / verify-mac: the signature or MAC is INVALID
  2  usage error (bad arguments, label over 64 bytes, input over 1 MiB)
  3  cannot connect to the appliance, or TLS failure
  4  the appliance refused the request (its status text and code are printed)
  5  local I/O or configuration error (file not found, unreadable profile or credentials)
  6  protocol error (the appliance's answer made no sense)

Examples:
  gmhsm --profile state/client.toml key generate --alg sm2 --label app1-sign
  gmhsm --profile state/client.toml sign --label app1-sign --in msg.txt --out msg.sig
  gmhsm --profile state/client.toml encrypt --label app1-enc --in doc --out doc.enc
  gmhsm --profile state/client.toml key pair --alg sm2 --kek app1-kek --pub-out p.pem --key-out p.wrapped
  gmhsm --socket state/local.sock audit --from 1
  gmhsm --socket state/local.sock service stop";

/// Talk to a gmhsm appliance: generate and use keys that never leave its crypto card.
#[derive(Parser, Debug)]
#[command(name = "gmhsm", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// Profile file (TOML: address, server_name, ca_cert, client_cert, client_key, failover).
    #[arg(long, env = "GMHSM_PROFILE", conflicts_with = "socket", required_unless_present = "socket")]
    pub profile: Option<PathBuf>,
    /// The appliance's local socket instead of a profile (tools on the appliance itself).
    #[arg(long, env = "GMHSM_SOCKET")]
    pub socket: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check that the appliance and its card answer.
    Ping,
    /// Show the card's state and counters.
    Status,
    /// Run every known-answer self-test in the card now.
    SelfTest,
    /// Manage keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Sign a file; the mechanism follows the key's algorithm unless --mech says otherwise.
    Sign {
        #[command(flatten)]
        key: KeyArgs,
        /// File to sign (at most 1 MiB); with --mech sm2-digest, the 32-byte digest.
        #[arg(long = "in")]
        input: PathBuf,
        /// Where to write the signature (DER for SM2 and ECDSA, raw for RSA); stdout if absent.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        mech: MechArgs,
    },
    /// Verify a signature over a file; exit 0 if valid, 1 if invalid.
    Verify {
        #[command(flatten)]
        key: KeyArgs,
        #[arg(long = "in")]
        input: PathBuf,
        /// The signature file (DER or raw r||s for SM2).
        #[arg(long)]
        sig: PathBuf,
        #[command(flatten)]
        mech: MechArgs,
    },
    /// Encrypt a file with a stored key (the public half of a key pair, or an SM4 key).
    Encrypt(CipherArgs),
    /// Decrypt a file with a stored key.
    Decrypt(CipherArgs),
    /// Compute a MAC over a file.
    Mac {
        #[command(flatten)]
        key: KeyArgs,
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "hmac-sm3")]
        mech: MacArg,
        /// IV for CBC-MAC, 32 hex digits (default zero; XORed into the first block, which gives
        /// the MAC of CBC-MAC with that IV).
        #[arg(long)]
        iv: Option<String>,
    },
    /// Verify a MAC; exit 0 if valid, 1 if invalid.
    VerifyMac {
        #[command(flatten)]
        key: KeyArgs,
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(long)]
        mac: PathBuf,
        #[arg(long, value_enum, default_value = "hmac-sm3")]
        mech: MacArg,
        #[arg(long)]
        iv: Option<String>,
    },
    /// Hash a file in the card (SM3 by default); hex on stdout.
    Hash {
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(long, value_enum, default_value = "sm3")]
        alg: HashArg,
    },
    /// Random bytes from the card's noise source and SM3 DRBG.
    Random {
        /// Number of bytes (at most 65536).
        #[arg(long, default_value_t = 32)]
        len: u32,
        /// Print hex instead of raw bytes.
        #[arg(long)]
        hex: bool,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Digital envelope: seal a file under a fresh SM4 session key wrapped to a public key.
    Seal {
        /// Stored key to wrap the session key to (e.g. sdf:enc:0)...
        #[arg(long, conflicts_with = "to_pem")]
        to_label: Option<String>,
        /// ...or an external public key (SubjectPublicKeyInfo PEM, e.g. from a certificate).
        #[arg(long)]
        to_pem: Option<PathBuf>,
        #[arg(long = "in")]
        input: PathBuf,
        /// Output: wrapped key length (4 bytes, big endian) || wrapped key || SM4-GCM sealed data.
        #[arg(long)]
        out: PathBuf,
    },
    /// Open an envelope made by `seal` with a stored private key, inside the card.
    Open {
        #[command(flatten)]
        key: KeyArgs,
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Read the audit log (local socket only), check its hash chain, and check the card's
    /// signed checkpoint over the last record with the audit public key.
    Audit {
        /// First sequence number.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// The card's audit public key (`audit:sign`, a PUBLIC KEY PEM file), pinned by the
        /// auditor. Without it the key is read from the appliance and its SM3 fingerprint
        /// printed, which proves nothing against the appliance itself.
        #[arg(long)]
        audit_key: Option<PathBuf>,
    },
    /// Register an application by its certificate (local socket only).
    RegisterApp {
        /// The application's certificate (PEM).
        #[arg(long)]
        cert: PathBuf,
        #[arg(long)]
        name: String,
        /// Domains (bit set) whose keys it may use.
        #[arg(long, default_value_t = 1)]
        domains: u32,
        /// Capabilities (comma-separated: sign,verify,encrypt,decrypt,wrap,unwrap,derive,mac,
        /// export-wrapped,raw-rsa,caller-iv).
        #[arg(long, default_value = "sign,verify,encrypt,decrypt,mac")]
        caps: String,
        /// Most keys it may own in the card (default with --max-bytes alone, or neither:
        /// the card's default, 1024).
        #[arg(long)]
        max_keys: Option<u32>,
        /// Most bytes of the card's store its keys may take (the card's default: 1 MiB).
        #[arg(long)]
        max_bytes: Option<u32>,
    },
    /// Revoke an application's registration (local socket only; needs the quorum logged in
    /// at the front panel on a ceremony-initialized appliance).
    RevokeApp {
        /// The application's certificate (PEM).
        #[arg(long)]
        cert: PathBuf,
    },
    /// Stop or start serving applications (local socket only; needs the quorum logged in at
    /// the front panel on a ceremony-initialized appliance).
    Service {
        #[arg(value_enum)]
        action: ServiceAction,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceAction {
    /// Refuse every application request but ping and status (survives a reboot).
    Stop,
    /// Serve applications again.
    Start,
}

#[derive(Args, Debug)]
pub struct KeyArgs {
    #[arg(long)]
    pub label: String,
    /// The key's access password, proved before the operation (SDF private-key access right).
    #[arg(long, env = "GMHSM_KEY_PASSWORD")]
    pub password: Option<SecretArg>,
}

/// A password from the command line or the environment: zeroed on drop, hidden from `Debug`.
#[derive(Clone)]
pub struct SecretArg(zeroize::Zeroizing<String>);

impl SecretArg {
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for SecretArg {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(SecretArg(zeroize::Zeroizing::new(s.to_owned())))
    }
}

impl std::fmt::Debug for SecretArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretArg(..)")
    }
}

#[derive(Args, Debug)]
pub struct CipherArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    #[arg(long = "in")]
    pub input: PathBuf,
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Mechanism; by default SM2 C1C3C2 for SM2 keys, OAEP for RSA keys, SM4-GCM for SM4 keys.
    #[arg(long, value_enum)]
    pub mech: Option<CipherArg>,
    /// IV (32 hex digits) for SM4 CBC/CFB/OFB/CTR, or nonce (24 hex digits) for SM4-GCM; the
    /// key needs the caller-iv capability. Without it the appliance draws the IV or nonce and
    /// writes it before the ciphertext, and decryption reads it from there.
    #[arg(long)]
    pub iv: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Generate a key inside the card.
    Generate {
        #[arg(long, value_enum)]
        alg: AlgArg,
        #[arg(long)]
        label: String,
        /// Capabilities (comma-separated); the algorithm's natural set if absent.
        #[arg(long)]
        caps: Option<String>,
        /// Domains (bit set) in which registered applications may use the key.
        #[arg(long, default_value_t = 0)]
        domains: u32,
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
    /// Show a key's algorithm, capabilities, domains and owner.
    Info {
        #[arg(long)]
        label: String,
    },
    /// List the keys visible to this client.
    List,
    /// Delete a key.
    Delete {
        #[arg(long)]
        label: String,
    },
    /// Set a key's access password (read from GMHSM_NEW_PASSWORD or --new-password).
    SetPassword {
        #[arg(long)]
        label: String,
        #[arg(long, env = "GMHSM_NEW_PASSWORD")]
        new_password: SecretArg,
    },
    /// Generate a key pair for the caller, not stored in the card (GM/T 0018
    /// SDF_GenerateKeyPair_ECC): the public key (PEM) and the private key, wrapped under the
    /// stored SM4 key --kek (needs its wrap capability; the file is nonce (12) || SM4-GCM
    /// ciphertext || tag (16) of the PKCS#8 DER, AAD = the public key's DER, see
    /// docs/protocol.md) or, with --plaintext and only if the appliance's key-export policy
    /// allows it, as a PKCS#8 PEM file (mode 0600). Refusals exit 4.
    Pair {
        #[arg(long, value_enum)]
        alg: PairAlgArg,
        /// SM4 key in the card to wrap the private key under...
        #[arg(long, conflicts_with = "plaintext", required_unless_present = "plaintext")]
        kek: Option<String>,
        /// ...or the private key in the clear (refused unless the policy allows it).
        #[arg(long)]
        plaintext: bool,
        /// Where to write the public key (SubjectPublicKeyInfo PEM); stdout if absent.
        #[arg(long)]
        pub_out: Option<PathBuf>,
        /// Where to write the private key (wrapped blob, or PKCS#8 PEM with --plaintext).
        #[arg(long)]
        key_out: PathBuf,
    },
    /// Open a private key wrapped by `key pair` with its KEK, inside the card (needs the
    /// KEK's decrypt capability); writes the PKCS#8 PEM (mode 0600).
    Unwrap {
        /// The SM4 key the private key was wrapped under.
        #[arg(long)]
        kek: String,
        /// The pair's public key (PEM): it is the wrapping's associated data.
        #[arg(long = "pub")]
        public: PathBuf,
        /// The wrapped private key.
        #[arg(long = "in")]
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Show, or change (--set; local socket only, and the policy-change quorum logged in at
    /// the front panel on a ceremony-initialized appliance), whether `key pair --plaintext`
    /// may return private keys in the clear. Off unless the administrators turn it on.
    ExportPolicy {
        #[arg(long, value_enum)]
        set: Option<OnOff>,
    },
    /// Import an SM2 key pair delivered as a GM/T 0016 enveloped key blob.
    ImportEnveloped {
        #[arg(long)]
        label: String,
        /// The stored SM2 key the blob's SM4 key is wrapped to.
        #[arg(long)]
        unwrap_with: String,
        /// The ENVELOPEDKEYBLOB file.
        #[arg(long = "in")]
        input: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct MechArgs {
    /// Mechanism; by default chosen from the key's algorithm (asked from the appliance).
    #[arg(long, value_enum)]
    pub mech: Option<MechArg>,
    /// SM2 distinguishing ID (default 1234567812345678).
    #[arg(long)]
    pub id: Option<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum AlgArg {
    Sm2,
    Rsa2048,
    Rsa3072,
    Rsa4096,
    EcdsaP256,
    Sm4,
    HmacSm3,
}

/// Algorithms of `key pair`.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum PairAlgArg {
    Sm2,
    EcdsaP256,
    Rsa2048,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnOff {
    On,
    Off,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum MechArg {
    /// SM2 signature with SM3 over the message (with the distinguishing ID).
    Sm2,
    /// SM2 signature over a 32-byte digest e = SM3(Z || M).
    Sm2Digest,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rsa,
    /// RSASSA-PSS with SHA-256.
    RsaPss,
    /// ECDSA P-256 with SHA-256.
    Ecdsa,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum CipherArg {
    Sm2,
    Sm2C1c2c3,
    Sm2Der,
    RsaPkcs1,
    RsaOaep,
    RsaRaw,
    Sm4Ecb,
    Sm4Cbc,
    Sm4Cfb,
    Sm4Ofb,
    Sm4Ctr,
    Sm4Gcm,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum MacArg {
    HmacSm3,
    Sm4Cmac,
    Sm4CbcMac,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum HashArg {
    Sm3,
    Sha256,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Guards finding 9: a password given on the command line never shows in `Debug`.
    #[test]
    fn passwords_stay_out_of_debug() {
        let pw: SecretArg = "correct horse".parse().unwrap();
        assert_eq!(pw.expose_secret(), "correct horse");
        let key = KeyArgs { label: "k".into(), password: Some(pw) };
        assert!(!format!("{key:?}").contains("correct"), "{key:?}");
    }
}
