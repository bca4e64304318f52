//! Request kinds: each request's wire index (its postcard variant index) and name, in one
//! place for the card's audit records and the daemon's logs.

use crate::Request;

/// The name of each request kind, by wire index.
pub const REQUEST_NAMES: [&str; 56] = [
    "Ping",
    "GetStatus",
    "GenerateKey",
    "ExportPublicKey",
    "Sign",
    "Verify",
    "DeleteKey",
    "ListKeys",
    "ReadAudit",
    "GenerateRandom",
    "Hash",
    "Encrypt",
    "Decrypt",
    "Mac",
    "VerifyMac",
    "OpInit",
    "OpUpdate",
    "OpFinal",
    "GenerateSessionKey",
    "ImportSessionKey",
    "DestroySessionKey",
    "AgreementInit",
    "AgreementRespond",
    "AgreementFinish",
    "SelfTest",
    "GetKeyInfo",
    "SetKeyPassword",
    "AuthorizeKey",
    "CloseSession",
    "RegisterApplication",
    "ImportEnvelopedKeyPair",
    "AdminChallenge",
    "AdminLogin",
    "AdminLogout",
    "AdminStatus",
    "InitBegin",
    "ReplaceBegin",
    "CeremonyEnroll",
    "CeremonyShare",
    "CeremonyVerify",
    "CeremonyCommit",
    "CeremonyAbort",
    "AuthorizeUnblock",
    "SetPolicy",
    "RevokeApplication",
    "Zeroize",
    "ServiceStop",
    "ServiceStart",
    "GenerateKeyPair",
    "KeyExportPolicy",
    "SignBatch",
    "DecryptBatch",
    "AdminRequestApproval",
    "AdminApprove",
    "RegisterAuditor",
    "AuditCheckpoint",
];

impl Request {
    /// The request's variant index on the wire (what audit records name it by). No
    /// allocation: the card and the daemon call it for every request.
    pub fn index(&self) -> u8 {
        use Request as R;
        match self {
            R::Ping => 0,
            R::GetStatus => 1,
            R::GenerateKey { .. } => 2,
            R::ExportPublicKey { .. } => 3,
            R::Sign { .. } => 4,
            R::Verify { .. } => 5,
            R::DeleteKey { .. } => 6,
            R::ListKeys => 7,
            R::ReadAudit { .. } => 8,
            R::GenerateRandom { .. } => 9,
            R::Hash { .. } => 10,
            R::Encrypt { .. } => 11,
            R::Decrypt { .. } => 12,
            R::Mac { .. } => 13,
            R::VerifyMac { .. } => 14,
            R::OpInit { .. } => 15,
            R::OpUpdate { .. } => 16,
            R::OpFinal { .. } => 17,
            R::GenerateSessionKey { .. } => 18,
            R::ImportSessionKey { .. } => 19,
            R::DestroySessionKey { .. } => 20,
            R::AgreementInit { .. } => 21,
            R::AgreementRespond { .. } => 22,
            R::AgreementFinish { .. } => 23,
            R::SelfTest => 24,
            R::GetKeyInfo { .. } => 25,
            R::SetKeyPassword { .. } => 26,
            R::AuthorizeKey { .. } => 27,
            R::CloseSession => 28,
            R::RegisterApplication { .. } => 29,
            R::ImportEnvelopedKeyPair { .. } => 30,
            R::AdminChallenge => 31,
            R::AdminLogin { .. } => 32,
            R::AdminLogout { .. } => 33,
            R::AdminStatus => 34,
            R::InitBegin { .. } => 35,
            R::ReplaceBegin { .. } => 36,
            R::CeremonyEnroll { .. } => 37,
            R::CeremonyShare { .. } => 38,
            R::CeremonyVerify { .. } => 39,
            R::CeremonyCommit => 40,
            R::CeremonyAbort => 41,
            R::AuthorizeUnblock { .. } => 42,
            R::SetPolicy { .. } => 43,
            R::RevokeApplication { .. } => 44,
            R::Zeroize => 45,
            R::ServiceStop => 46,
            R::ServiceStart => 47,
            R::GenerateKeyPair { .. } => 48,
            R::KeyExportPolicy { .. } => 49,
            R::SignBatch { .. } => 50,
            R::DecryptBatch { .. } => 51,
            R::AdminRequestApproval => 52,
            R::AdminApprove { .. } => 53,
            R::RegisterAuditor { .. } => 54,
            R::AuditCheckpoint { .. } => 55,
        }
    }

    /// The request's variant name, for logs.
    pub fn name(&self) -> &'static str {
        REQUEST_NAMES[usize::from(self.index())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyAlg, Label, request::KeyPairProtection};

    /// The index is the byte postcard puts first, and the name the variant's `Debug` name.
    #[test]
    fn index_and_name_match_the_wire_and_the_variant() {
        let label = || Label::try_from("k").unwrap();
        let samples = [
            Request::Ping,
            Request::ListKeys,
            Request::GenerateRandom { len: 1 },
            Request::DeleteKey { label: label() },
            Request::SelfTest,
            Request::CloseSession,
            Request::AdminChallenge,
            Request::CeremonyCommit,
            Request::RevokeApplication { cert_sha256: [0; 32] },
            Request::Zeroize,
            Request::ServiceStart,
            Request::GenerateKeyPair { alg: KeyAlg::Sm2, protection: KeyPairProtection::Plaintext },
            Request::KeyExportPolicy { set: None },
            Request::AdminRequestApproval,
            Request::AdminApprove { code: 1, approve: true },
            Request::RegisterAuditor { cert_sha256: [0; 32], name: "a".try_into().unwrap() },
            Request::AuditCheckpoint { seq: 1 },
        ];
        for r in samples {
            let wire = postcard::to_allocvec(&r).unwrap();
            assert_eq!(r.index(), wire[0], "{r:?}");
            let debug = alloc::format!("{r:?}");
            assert!(debug.starts_with(r.name()), "{debug} vs {}", r.name());
        }
    }
}
