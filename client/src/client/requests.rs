//! The typed request helpers: one call, one expected answer, a clear error otherwise.

use gmhsm_proto::frame::MAX_MESSAGE_LEN;
use gmhsm_proto::{KeyAlg, Label, Mechanism, Request, Response, Status, StatusInfo};

use super::{Client, check_batch, unexpected};
use crate::ClientError;

impl Client {
    /// Liveness check through the daemon to the card.
    pub fn ping(&mut self) -> Result<(), ClientError> {
        match self.call(Request::Ping)? {
            Response::Pong => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// The card's state and counters.
    pub fn status(&mut self) -> Result<StatusInfo, ClientError> {
        match self.call(Request::GetStatus)? {
            Response::Status(info) => Ok(info),
            other => Err(unexpected(&other)),
        }
    }

    /// Generate a key pair in the card; returns its public key (DER SubjectPublicKeyInfo).
    pub fn generate_key(&mut self, label: &str, alg: KeyAlg) -> Result<Vec<u8>, ClientError> {
        match self.call(Request::GenerateKey {
            label: to_label(label)?,
            alg,
            caps: gmhsm_proto::Capabilities::DEFAULT,
            domains: 0,
        })? {
            Response::KeyGenerated { spki_der, .. } => Ok(spki_der),
            other => Err(unexpected(&other)),
        }
    }

    /// The algorithm and public key (DER SubjectPublicKeyInfo) of `label`.
    pub fn export_public_key(&mut self, label: &str) -> Result<(KeyAlg, Vec<u8>), ClientError> {
        match self.call(Request::ExportPublicKey { label: to_label(label)? })? {
            Response::PublicKey { alg, spki_der } => Ok((alg, spki_der)),
            other => Err(unexpected(&other)),
        }
    }

    /// Sign `message` with the private key of `label`.
    pub fn sign(&mut self, label: &str, mechanism: Mechanism, message: &[u8]) -> Result<Vec<u8>, ClientError> {
        check_message(message)?;
        let request = Request::Sign { label: to_label(label)?, mechanism, message: message.to_vec() };
        match self.call(request)? {
            Response::Signature(sig) => Ok(sig),
            other => Err(unexpected(&other)),
        }
    }

    /// Sign each of `messages` with the private key of `label` in one request (at most
    /// [`gmhsm_proto::MAX_SIGN_BATCH`] messages, all in one frame); the signatures come back in
    /// the order of `messages`. All or nothing: an error means nothing was signed. For many
    /// small messages this costs the appliance a fraction of as many [`Client::sign`] calls.
    pub fn sign_batch(
        &mut self,
        label: &str,
        mechanism: Mechanism,
        messages: &[&[u8]],
    ) -> Result<Vec<Vec<u8>>, ClientError> {
        check_batch("messages", messages.len(), gmhsm_proto::MAX_SIGN_BATCH)?;
        let request = Request::SignBatch {
            label: to_label(label)?,
            mechanism,
            messages: messages.iter().map(|m| gmhsm_proto::ByteBuf::from(m.to_vec())).collect(),
        };
        match self.call(request)? {
            Response::Signatures(sigs) if sigs.len() == messages.len() => {
                Ok(sigs.into_iter().map(|s| s.into_vec()).collect())
            }
            Response::Signatures(sigs) => {
                Err(ClientError::Protocol(format!("{} signatures for {} messages", sigs.len(), messages.len())))
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Verify `signature` over `message`: `Ok(true)` if it verifies, `Ok(false)` if the
    /// appliance says `SignatureInvalid`, `Err` for every other failure.
    pub fn verify(
        &mut self,
        label: &str,
        mechanism: Mechanism,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, ClientError> {
        check_message(message)?;
        let request = Request::Verify {
            label: to_label(label)?,
            mechanism,
            message: message.to_vec(),
            signature: signature.to_vec(),
        };
        match self.call(request) {
            Ok(Response::Verified) => Ok(true),
            Err(ClientError::Status(Status::SignatureInvalid)) => Ok(false),
            Ok(other) => Err(unexpected(&other)),
            Err(e) => Err(e),
        }
    }

    /// The labels (and algorithms) of the keys this client may see.
    pub fn list_keys(&mut self) -> Result<Vec<(String, KeyAlg)>, ClientError> {
        match self.call(Request::ListKeys)? {
            Response::Keys(keys) => Ok(keys.into_iter().map(|(l, a)| (l.as_str().to_owned(), a)).collect()),
            other => Err(unexpected(&other)),
        }
    }

    /// Delete the key `label`.
    pub fn delete_key(&mut self, label: &str) -> Result<(), ClientError> {
        match self.call(Request::DeleteKey { label: to_label(label)? })? {
            Response::Deleted => Ok(()),
            other => Err(unexpected(&other)),
        }
    }
}

/// The SM2 mechanism with a chosen distinguishing ID (at most 128 bytes).
pub fn sm2_with_id(id: &[u8]) -> Result<Mechanism, ClientError> {
    let distid = heapless::Vec::from_slice(id)
        .map_err(|_| ClientError::InvalidArgument(format!("SM2 ID is {} bytes; the limit is 128", id.len())))?;
    Ok(Mechanism::Sm2Sm3 { distid })
}

/// A label checked against the wire bound (1 to 64 bytes).
pub fn to_label(label: &str) -> Result<Label, ClientError> {
    if label.is_empty() {
        return Err(ClientError::InvalidArgument("the label is empty".into()));
    }
    Label::try_from(label)
        .map_err(|_| ClientError::InvalidArgument(format!("label is {} bytes; the limit is 64", label.len())))
}

pub(super) fn check_message(message: &[u8]) -> Result<(), ClientError> {
    if message.len() > MAX_MESSAGE_LEN {
        return Err(ClientError::InvalidArgument(format!(
            "message is {} bytes; the appliance accepts at most {MAX_MESSAGE_LEN}",
            message.len()
        )));
    }
    Ok(())
}
