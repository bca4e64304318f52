//! `gmhsm audit`: read the audit log and check it against a signed checkpoint.

use super::*;

pub(super) fn audit(cli: &Cli, from: u64, audit_key: Option<&std::path::Path>) -> Result<(), Failure> {
    let mut client = connect(cli)?;
    let mut next = from;
    let mut prev: Option<gmhsm_client::AuditRecord> = None;
    let mut broken = None;
    loop {
        let batch = client.read_audit(next, 256)?;
        if batch.is_empty() {
            break;
        }
        for rec in batch {
            if let Some(p) = &prev
                && broken.is_none()
                && (rec.seq != p.seq + 1 || rec.prev_hash != gmhsm_client::audit_hash(p))
            {
                broken = Some(rec.seq);
            }
            let who = rec.principal.as_ref().map_or_else(|| "card".to_string(), owner_text);
            println!("{}\tboot {}\t{} ms\t{who}\t{:?}", rec.seq, rec.boot, rec.time_ms, rec.event);
            next = rec.seq + 1;
            prev = Some(rec);
        }
    }
    if let Some(seq) = broken {
        eprintln!("audit chain BROKEN at record {seq}");
        return Err(Failure::Invalid("audit chain"));
    }
    eprintln!("audit chain OK");
    let Some(last) = prev else { return Ok(()) };
    check_checkpoint(&mut client, &last, audit_key)
}

/// Ask the card for a checkpoint over `last` and verify it with the audit key.
fn check_checkpoint(
    client: &mut gmhsm_client::Client,
    last: &gmhsm_client::AuditRecord,
    audit_key: Option<&std::path::Path>,
) -> Result<(), Failure> {
    let spki = match audit_key {
        Some(path) => public_key_pem(path)?,
        None => {
            let (_, spki) = client.export_public_key(gmhsm_client::AUDIT_KEY)?;
            let fp: String = <sm3::Sm3 as sm3::Digest>::digest(&spki).iter().map(|b| format!("{b:02x}")).collect();
            eprintln!("audit key read from the appliance (not pinned; pass --audit-key): SM3 {fp}");
            spki
        }
    };
    let cp = match client.call(gmhsm_client::Request::AuditCheckpoint { seq: last.seq })? {
        gmhsm_client::Response::AuditCheckpoint(cp) => cp,
        _ => return Err(Failure::Invalid("audit checkpoint: unexpected answer")),
    };
    match gmhsm_client::verify_checkpoint(&spki, last, &cp) {
        Ok(()) => {
            eprintln!("audit checkpoint OK: the card signed record {}", cp.seq);
            Ok(())
        }
        Err(e) => {
            eprintln!("audit checkpoint INVALID: {e}");
            Err(Failure::Invalid("audit checkpoint"))
        }
    }
}
