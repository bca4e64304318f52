//! Card-link session numbers the appliance itself uses (`Principal::Local`). The daemon's
//! connections use their connection tokens (small numbers, never reused); the appliance's own
//! links take numbers from the top of the range, far from them. The card maps each link's
//! session numbers to sessions of its own, so equal numbers on two links never meet.

/// The `n`th card-held TLS key's signing link (`n` < 16).
pub const fn tls_key(n: u64) -> u64 {
    u64::MAX - n
}

/// Provisioning the card-held TLS keys at boot (generate or export).
pub const PROVISIONING: u64 = u64::MAX - 16;

/// The front panel's ceremonies; a quorum's authority lives in this session.
pub const PANEL: u64 = u64::MAX - 64;
