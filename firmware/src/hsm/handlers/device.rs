//! The device's own requests: liveness, status, session end, self-tests, random bytes and
//! hashes.

use gmhsm_platform::Platform;
use gmhsm_proto::{AuditEvent, HashAlg, Request, Response};
use sha2::Digest as _;

use super::super::{Hsm, State, short};
use crate::alg;
use crate::error::Error;

/// Most bytes of random data per request.
const MAX_RANDOM: u32 = 1 << 16;

impl<P: Platform> Hsm<P> {
    pub(super) fn device_request(&mut self, session: u64, request: Request) -> Result<Response, Error> {
        match request {
            Request::Ping => Ok(Response::Pong),
            Request::GetStatus => Ok(Response::Status(self.status())),
            Request::CloseSession => {
                self.sessions.close(session);
                self.admin_session_closed(session);
                Ok(Response::Done)
            }
            Request::SelfTest => {
                if let Err(why) = crate::selftest::run() {
                    self.cache.clear();
                    self.records.clear();
                    self.fast.clear();
                    self.state = State::Error(why);
                    self.log(None, AuditEvent::ErrorState { reason: short(why) });
                }
                Ok(Response::Status(self.status()))
            }
            Request::GenerateRandom { len } => {
                if len > MAX_RANDOM {
                    return Err(Error::Invalid("random length"));
                }
                let mut out = alloc::vec![0u8; len as usize];
                self.rng.fill(&mut out)?;
                Ok(Response::Random(out))
            }
            Request::Hash { alg, data } => Ok(Response::Digest(match alg {
                HashAlg::Sm3 => alg::sm3::sm3(&data).to_vec(),
                HashAlg::Sha256 => sha2::Sha256::digest(&data).to_vec(),
                _ => return Err(Error::Invalid("hash algorithm")),
            })),
            _ => Err(Error::Internal("not a device request")),
        }
    }
}
