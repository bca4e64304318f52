//! The quorum layer's one error enum, mapped to the wire in exactly one place ([`QuorumError::status`]).

use gmhsm_proto::Status;
use gmhsm_proto::admin::PolicyError;

/// Why an administration request was refused. Every variant leaves the card's persistent
/// state unchanged; a ceremony in progress stays where it was unless the doc says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuorumError {
    /// The request does not fit the ceremony's (or device's) current state. Send the step
    /// the state expects (`expected`), or abort the ceremony.
    Unexpected { expected: &'static str, got: &'static str },
    /// The policy breaks a rule of [`gmhsm_proto::QuorumPolicy::check`]. Fix it and retry.
    BadPolicy(PolicyError),
    /// Administration comes only from the appliance itself (`Principal::Local`).
    NotLocal,
    /// The ceremony belongs to another session.
    OtherSession,
    /// The card is not enrolled (or not in this ceremony).
    UnknownCard,
    /// A card with this serial or key is already enrolled.
    DuplicateCard,
    /// The ceremony already has its n administrator cards.
    TooManyCards,
    /// The card's role does not allow this.
    WrongRole,
    /// The card's public key is not a valid SM2 point, or a field has the wrong length.
    BadInput,
    /// The card's signature does not verify over this session's nonce.
    BadSignature,
    /// No unused nonce: ask for `AdminChallenge` first.
    NoNonce,
    /// The share blob does not open for this card, device and epoch.
    BadShare,
    /// The recombined domain key failed its check: a share was wrong. Nothing was granted;
    /// the shares collected so far are dropped.
    Integrity,
    /// Not every card was verified (commit).
    NotVerified,
    /// The session lacks the quorum authority this operation needs (audited).
    NotAuthorized,
    /// The DRBG failed; the card's error state follows.
    Rng,
    /// The store failed to read or write.
    Store,
    /// An internal inconsistency (should not happen).
    Internal,
}

impl QuorumError {
    /// The wire status for this error (the one mapping).
    pub fn status(self) -> Status {
        match self {
            QuorumError::Unexpected { .. }
            | QuorumError::BadPolicy(_)
            | QuorumError::UnknownCard
            | QuorumError::DuplicateCard
            | QuorumError::TooManyCards
            | QuorumError::WrongRole
            | QuorumError::BadInput
            | QuorumError::NoNonce
            | QuorumError::NotVerified => Status::InvalidArgument,
            QuorumError::NotLocal | QuorumError::OtherSession | QuorumError::NotAuthorized => Status::AccessDenied,
            QuorumError::BadSignature => Status::SignatureInvalid,
            QuorumError::BadShare | QuorumError::Integrity => Status::DecryptFailed,
            QuorumError::Rng => Status::DeviceError,
            QuorumError::Store | QuorumError::Internal => Status::Internal,
        }
    }
}

impl From<crate::store::StoreError> for QuorumError {
    fn from(_: crate::store::StoreError) -> Self {
        QuorumError::Store
    }
}
