//! `gmhsm key …`: the key commands.

use super::*;

pub(super) fn key_command(cli: &Cli, k: &KeyCommand) -> Result<(), Failure> {
    match k {
        KeyCommand::Generate { alg, label, caps, domains } => {
            let alg = key_alg(*alg);
            let caps = match caps {
                Some(c) => parse_caps(c)?,
                None => gmhsm_client::Capabilities::DEFAULT,
            };
            key_connect(cli, label)?.generate_key_with(label, alg, caps, *domains)?;
            println!("{label} {}", alg_name(alg));
        }
        KeyCommand::Export { label, pem: as_pem, out } => {
            let (_, spki) = connect(cli)?.export_public_key(label)?;
            let bytes = if *as_pem { pem::public_key(&spki).into_bytes() } else { spki };
            write_output(out.as_deref(), &bytes)?;
        }
        KeyCommand::Info { label } => {
            let i = connect(cli)?.key_info(label)?;
            println!("label: {label}");
            println!("algorithm: {}", alg_name(i.alg));
            println!("capabilities: {}", caps_text(i.caps));
            println!("domains: {:#x}", i.domains);
            println!("owner: {}", owner_text(&i.owner));
            println!("access password: {}", if i.password { "set" } else { "none" });
        }
        KeyCommand::List => {
            for (label, alg) in connect(cli)?.list_keys()? {
                println!("{label}\t{}", alg_name(alg));
            }
        }
        KeyCommand::Delete { label } => {
            key_connect(cli, label)?.delete_key(label)?;
            println!("deleted {label}");
        }
        KeyCommand::SetPassword { label, new_password } => {
            key_connect(cli, label)?.set_key_password(label, new_password.expose_secret().as_bytes())?;
            println!("password set for {label}");
        }
        KeyCommand::Pair { alg, kek, plaintext, pub_out, key_out } => {
            let alg = match alg {
                PairAlgArg::Sm2 => KeyAlg::Sm2,
                PairAlgArg::EcdsaP256 => KeyAlg::EcdsaP256,
                PairAlgArg::Rsa2048 => KeyAlg::Rsa2048,
            };
            let protection = match (kek, plaintext) {
                (Some(kek), false) => KeyPairProtection::Wrapped { kek: label(kek)? },
                (None, true) => KeyPairProtection::Plaintext,
                _ => return Err(Failure::Usage("give either --kek or --plaintext".into())),
            };
            let pair = connect(cli)?.generate_key_pair(alg, protection)?;
            match &pair.private {
                PrivateKeyOut::Wrapped(blob) => write_secret(key_out, blob)?,
                PrivateKeyOut::Plaintext(pkcs8) => {
                    write_secret(key_out, pem::private_key(pkcs8.expose_secret()).as_bytes())?
                }
                _ => {
                    return Err(Failure::Client(gmhsm_client::ClientError::Protocol(
                        "unknown private key form".into(),
                    )));
                }
            }
            write_output(pub_out.as_deref(), pem::public_key(&pair.spki_der).as_bytes())?;
        }
        KeyCommand::Unwrap { kek, public, input, out } => {
            let spki = public_key_pem(public)?;
            let blob = read_input(input)?;
            let pkcs8 = connect(cli)?.unwrap_private_key(kek, &spki, &blob)?;
            write_secret(out, pem::private_key(pkcs8.expose_secret()).as_bytes())?;
        }
        KeyCommand::ExportPolicy { set } => {
            let mut client = if set.is_some() { admin_connect(cli)? } else { connect(cli)? };
            let allowed = client.key_export_policy(set.map(|s| s == OnOff::On))?;
            println!("plaintext export of generated private keys: {}", if allowed { "ALLOWED" } else { "refused" });
        }
        KeyCommand::ImportEnveloped { label, unwrap_with, input } => {
            let blob = read_input(input)?;
            connect(cli)?.import_enveloped_key_pair(label, unwrap_with, &blob)?;
            println!("{label} sm2 (imported)");
        }
    }
    Ok(())
}

pub(super) fn owner_text(p: &gmhsm_client::Principal) -> String {
    match p {
        gmhsm_client::Principal::Application { cert_sha256 } => format!("application {}", to_hex(cert_sha256)),
        gmhsm_client::Principal::Local => "appliance (local)".into(),
    }
}

fn key_alg(a: AlgArg) -> KeyAlg {
    match a {
        AlgArg::Sm2 => KeyAlg::Sm2,
        AlgArg::Rsa2048 => KeyAlg::Rsa2048,
        AlgArg::Rsa3072 => KeyAlg::Rsa3072,
        AlgArg::Rsa4096 => KeyAlg::Rsa4096,
        AlgArg::EcdsaP256 => KeyAlg::EcdsaP256,
        AlgArg::Sm4 => KeyAlg::Sm4,
        AlgArg::HmacSm3 => KeyAlg::HmacSm3,
    }
}
