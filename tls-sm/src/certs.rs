//! SM2 X.509 v3 certificates for tests and for the appliance (rcgen has no SM2).
//!
//! Certificates are built with `x509-cert`'s `CertificateBuilder` and a profile of our own
//! (`Sm2Profile`), and signed SM2-with-SM3 (1.2.156.10197.1.501, parameters absent) with
//! the distinguishing identifier [`CERT_DISTID`] — the one OpenSSL, Tongsuo and GmSSL use
//! for certificates. The signature goes into the certificate DER-encoded
//! (`SEQUENCE { r, s }`): `sm2` 0.14 encodes its fixed-size `Signature` as raw `r ‖ s` in
//! the BIT STRING, which no verifier accepts, so the builder's `finalize` / `assemble` halves
//! are used around an explicit DER signature instead of `Builder::build`.
//!
//! Every certificate carries subjectKeyIdentifier (first 20 bytes of SM3 over the public key,
//! as RFC 7093 method 1 does with SHA-256) and, when issued by a CA, authorityKeyIdentifier.
//! A CA gets basicConstraints `cA` (critical) and keyUsage keyCertSign + cRLSign; an end
//! entity gets keyUsage digitalSignature (critical), extendedKeyUsage serverAuth and/or
//! clientAuth, and subjectAltName with its DNS names and IP addresses.

use std::net::IpAddr;
use std::str::FromStr;
use std::time::SystemTime;

use getrandom::SysRng;
use getrandom::rand_core::TryRng;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sm2::dsa::signature::RandomizedSigner;
use sm2::elliptic_curve::Generate;
use sm2::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use sm3::{Digest, Sm3};
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder};
use x509_cert::der::asn1::{BitString, Ia5String, ObjectIdentifier, OctetString};
use x509_cert::der::{Decode, Encode, EncodePem, pem::LineEnding};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName,
    SubjectKeyIdentifier,
};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use x509_cert::time::{Time, Validity};

use crate::sign::CERT_DISTID;

const ID_KP_SERVER_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.1");
const ID_KP_CLIENT_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");

/// Why a certificate or key could not be made. Nothing is left half-built; the caller fixes
/// the input (or retries a failed random draw).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertError {
    /// The operating system's random source failed.
    Random,
    /// The subject name did not parse as an RFC 4514 string.
    BadName,
    /// A DNS name is not IA5 (ASCII).
    BadDnsName,
    /// The validity period is not representable or ends before it starts.
    BadValidity,
    /// The key is not an SM2 PKCS#8 key.
    BadKey,
    /// Encoding or signing failed (a bug or an unencodable input).
    Encoding,
}

impl std::fmt::Display for CertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Random => "random source failed",
            Self::BadName => "subject name does not parse",
            Self::BadDnsName => "DNS name is not ASCII",
            Self::BadValidity => "validity period is not valid",
            Self::BadKey => "not an SM2 PKCS#8 key",
            Self::Encoding => "certificate encoding or signing failed",
        })
    }
}

impl std::error::Error for CertError {}

/// An SM2 key pair. The secret zeroizes on drop and is not printed by `Debug`.
pub struct Sm2KeyPair {
    secret: sm2::SecretKey,
}

impl std::fmt::Debug for Sm2KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sm2KeyPair").finish_non_exhaustive()
    }
}

impl Sm2KeyPair {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, CertError> {
        let secret = sm2::SecretKey::try_generate_from_rng(&mut SysRng).map_err(|_| CertError::Random)?;
        Ok(Self { secret })
    }

    /// Reads a PKCS#8 SM2 private key (`id-ecPublicKey` + `sm2p256v1`).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, CertError> {
        let secret = sm2::SecretKey::from_pkcs8_der(der).map_err(|_| CertError::BadKey)?;
        Ok(Self { secret })
    }

    /// The private key as PKCS#8 DER, ready for rustls (`with_single_cert`,
    /// `with_client_auth_cert`) or [`crate::sm2_signing_key`].
    pub fn expose_secret_pkcs8_der(&self) -> Result<PrivateKeyDer<'static>, CertError> {
        let doc = self.secret.to_pkcs8_der().map_err(|_| CertError::Encoding)?;
        Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(doc.as_bytes().to_vec())))
    }

    /// The private key as a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), as OpenSSL reads it.
    pub fn expose_secret_pkcs8_pem(&self) -> Result<zeroize::Zeroizing<String>, CertError> {
        self.secret.to_pkcs8_pem(LineEnding::LF).map_err(|_| CertError::Encoding)
    }

    /// The public key as a DER `SubjectPublicKeyInfo`.
    pub fn public_key_der(&self) -> Result<Vec<u8>, CertError> {
        let doc = self.secret.public_key().to_public_key_der().map_err(|_| CertError::Encoding)?;
        Ok(doc.into_vec())
    }

    fn signing_key(&self) -> Result<sm2::dsa::SigningKey, CertError> {
        sm2::dsa::SigningKey::new(CERT_DISTID, &self.secret).map_err(|_| CertError::Encoding)
    }
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A certification authority that signs other certificates (no path-length limit).
    Ca,
    /// A TLS server.
    Server,
    /// A TLS client.
    Client,
    /// Both (extendedKeyUsage serverAuth and clientAuth).
    ServerAndClient,
}

/// The contents of one certificate. Times are passed in, never read from the clock here.
#[derive(Debug, Clone)]
pub struct CertParams {
    /// Subject as an RFC 4514 string, e.g. `"CN=gmhsm-01,O=gmhsm"`.
    pub subject: String,
    /// DNS names for subjectAltName (ignored for a CA).
    pub dns_names: Vec<String>,
    /// IP addresses for subjectAltName (ignored for a CA).
    pub ip_addresses: Vec<IpAddr>,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// What the certificate is for.
    pub role: Role,
}

/// A certificate made here, with what an issuer needs to sign under it.
#[derive(Debug, Clone)]
pub struct Sm2Certificate {
    cert: x509_cert::Certificate,
    der: Vec<u8>,
}

impl Sm2Certificate {
    /// The certificate DER for rustls.
    pub fn der(&self) -> CertificateDer<'static> {
        CertificateDer::from(self.der.clone())
    }

    /// The certificate as PEM (`-----BEGIN CERTIFICATE-----`).
    pub fn pem(&self) -> Result<String, CertError> {
        self.cert.to_pem(LineEnding::LF).map_err(|_| CertError::Encoding)
    }
}

/// A self-signed certificate (normally `Role::Ca`) for `key`.
pub fn self_signed(params: &CertParams, key: &Sm2KeyPair) -> Result<Sm2Certificate, CertError> {
    build(params, &key.public_key_der()?, None, key)
}

/// A certificate for a subject known only by its public key (DER SubjectPublicKeyInfo), e.g.
/// a key pair born in the crypto card, signed by the CA `issuer` with `issuer_key`.
pub fn issue_for_public_key(
    params: &CertParams,
    subject_spki_der: &[u8],
    issuer: &Sm2Certificate,
    issuer_key: &Sm2KeyPair,
) -> Result<Sm2Certificate, CertError> {
    build(params, subject_spki_der, Some(issuer), issuer_key)
}

impl Sm2Certificate {
    /// Parse a certificate made here (or any X.509 certificate) from DER, to issue under it.
    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        let cert = x509_cert::Certificate::from_der(der).map_err(|_| CertError::Encoding)?;
        Ok(Self { cert, der: der.to_vec() })
    }
}

/// A certificate for `subject_key` signed by the CA `issuer` with `issuer_key`.
pub fn issue(
    params: &CertParams,
    subject_key: &Sm2KeyPair,
    issuer: &Sm2Certificate,
    issuer_key: &Sm2KeyPair,
) -> Result<Sm2Certificate, CertError> {
    build(params, &subject_key.public_key_der()?, Some(issuer), issuer_key)
}

fn build(
    params: &CertParams,
    subject_spki_der: &[u8],
    issuer: Option<&Sm2Certificate>,
    issuer_key: &Sm2KeyPair,
) -> Result<Sm2Certificate, CertError> {
    let subject = Name::from_str(&params.subject).map_err(|_| CertError::BadName)?;
    let issuer_name = issuer.map(|c| c.cert.tbs_certificate().subject().clone());
    let profile = Sm2Profile {
        subject,
        issuer: issuer_name,
        role: params.role,
        dns_names: params.dns_names.clone(),
        ip_addresses: params.ip_addresses.clone(),
    };
    if params.dns_names.iter().any(|d| Ia5String::new(d).is_err()) {
        return Err(CertError::BadDnsName);
    }
    if params.not_after <= params.not_before {
        return Err(CertError::BadValidity);
    }
    let validity = Validity::new(
        Time::try_from(params.not_before).map_err(|_| CertError::BadValidity)?,
        Time::try_from(params.not_after).map_err(|_| CertError::BadValidity)?,
    );
    let spki = SubjectPublicKeyInfoOwned::from_der(subject_spki_der).map_err(|_| CertError::Encoding)?;
    let mut builder =
        CertificateBuilder::new(profile, random_serial()?, validity, spki).map_err(|_| CertError::Encoding)?;

    let signer = issuer_key.signing_key()?;
    let tbs = builder.finalize(&signer).map_err(|_| CertError::Encoding)?;
    let sig: sm2::dsa::Signature = signer.try_sign_with_rng(&mut SysRng, &tbs).map_err(|_| CertError::Encoding)?;
    let sig = BitString::from_bytes(sig.to_der().as_bytes()).map_err(|_| CertError::Encoding)?;
    let cert = builder.assemble(sig, &signer).map_err(|_| CertError::Encoding)?;
    let der = cert.to_der().map_err(|_| CertError::Encoding)?;
    Ok(Sm2Certificate { cert, der })
}

/// A positive 128-bit serial number, never zero and never with a leading zero byte.
fn random_serial() -> Result<SerialNumber, CertError> {
    let mut bytes = [0u8; 16];
    SysRng.try_fill_bytes(&mut bytes).map_err(|_| CertError::Random)?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::new(&bytes).map_err(|_| CertError::Encoding)
}

/// First 20 bytes of SM3 over the subjectPublicKey bits.
fn key_id(spki: &SubjectPublicKeyInfoRef<'_>) -> Result<OctetString, x509_cert::builder::Error> {
    let digest = Sm3::digest(spki.subject_public_key.raw_bytes());
    Ok(OctetString::new(&digest[..20])?)
}

/// The extensions of [`CertParams::role`]; see the module docs.
struct Sm2Profile {
    subject: Name,
    issuer: Option<Name>,
    role: Role,
    dns_names: Vec<String>,
    ip_addresses: Vec<IpAddr>,
}

fn ext<T: Encode + x509_cert::der::oid::AssociatedOid>(
    critical: bool,
    value: &T,
) -> Result<Extension, x509_cert::builder::Error> {
    Ok(Extension { extn_id: T::OID, critical, extn_value: OctetString::new(value.to_der()?)? })
}

impl BuilderProfile for Sm2Profile {
    fn get_issuer(&self, subject: &Name) -> Name {
        self.issuer.clone().unwrap_or_else(|| subject.clone())
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        issuer_spk: SubjectPublicKeyInfoRef<'_>,
        _tbs: &x509_cert::TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let ski = key_id(&spk)?;
        let mut exts = vec![ext(false, &SubjectKeyIdentifier(ski.clone()))?];
        let aki = if self.issuer.is_some() { key_id(&issuer_spk)? } else { ski };
        exts.push(ext(false, &AuthorityKeyIdentifier { key_identifier: Some(aki), ..Default::default() })?);
        if self.role == Role::Ca {
            let bc = BasicConstraints { ca: true, path_len_constraint: None };
            exts.push(ext(true, &bc)?);
            let ku = KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign);
            exts.push(ext(true, &ku)?);
            return Ok(exts);
        }
        exts.push(ext(true, &BasicConstraints { ca: false, path_len_constraint: None })?);
        exts.push(ext(true, &KeyUsage(KeyUsages::DigitalSignature.into()))?);
        let eku = match self.role {
            Role::Server => vec![ID_KP_SERVER_AUTH],
            Role::Client => vec![ID_KP_CLIENT_AUTH],
            _ => vec![ID_KP_SERVER_AUTH, ID_KP_CLIENT_AUTH],
        };
        exts.push(ext(false, &ExtendedKeyUsage(eku))?);
        let mut names = Vec::new();
        for dns in &self.dns_names {
            names.push(GeneralName::DnsName(Ia5String::new(dns)?));
        }
        for ip in &self.ip_addresses {
            let bytes = match ip {
                IpAddr::V4(v4) => v4.octets().to_vec(),
                IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            names.push(GeneralName::IpAddress(OctetString::new(bytes)?));
        }
        if !names.is_empty() {
            exts.push(ext(false, &SubjectAltName(names))?);
        }
        Ok(exts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn params(role: Role) -> CertParams {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        CertParams {
            subject: "CN=t,O=gmhsm".into(),
            dns_names: vec!["t.example".into()],
            ip_addresses: vec!["::1".parse().expect("ip")],
            not_before: now,
            not_after: now + Duration::from_secs(86_400),
            role,
        }
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let key = Sm2KeyPair::generate().expect("key");
        let mut p = params(Role::Ca);
        p.subject = "not a name".into();
        assert_eq!(self_signed(&p, &key).err(), Some(CertError::BadName));
        let mut p = params(Role::Server);
        p.not_after = p.not_before;
        assert_eq!(self_signed(&p, &key).err(), Some(CertError::BadValidity));
        let mut p = params(Role::Server);
        p.dns_names = vec!["bücher.example".into()];
        assert_eq!(self_signed(&p, &key).err(), Some(CertError::BadDnsName));
        assert_eq!(Sm2KeyPair::from_pkcs8_der(&[0x30, 0]).err(), Some(CertError::BadKey));
    }

    #[test]
    fn issued_certificate_has_the_sm2_algorithms_and_a_der_signature() {
        let ca_key = Sm2KeyPair::generate().expect("key");
        let ca = self_signed(&params(Role::Ca), &ca_key).expect("ca");
        let ee_key = Sm2KeyPair::generate().expect("key");
        let ee = issue(&params(Role::Server), &ee_key, &ca, &ca_key).expect("ee");
        let cert = x509_cert::Certificate::from_der(ee.der().as_ref()).expect("parse");
        let sm2_sm3 = ObjectIdentifier::new_unwrap("1.2.156.10197.1.501");
        assert_eq!(cert.signature_algorithm().oid, sm2_sm3);
        assert!(cert.signature_algorithm().parameters.is_none());
        assert_eq!(cert.tbs_certificate().signature().oid, sm2_sm3);
        assert_eq!(cert.tbs_certificate().issuer(), ca.cert.tbs_certificate().subject());
        let sig = cert.signature().as_bytes().expect("octets");
        assert!(sm2::dsa::Signature::from_der(sig).is_ok(), "signature is DER r,s");
        let round_trip =
            Sm2KeyPair::from_pkcs8_der(ee_key.expose_secret_pkcs8_der().expect("der").secret_der()).expect("pkcs8");
        assert_eq!(round_trip.public_key_der(), ee_key.public_key_der());
    }
}
