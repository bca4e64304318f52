//! `docs/protocol.md` is the contract another language implements: these tests hold it to the
//! code.
//!
//! * Golden vectors: every fenced block tagged `hex NAME` in the document is the exact frame
//!   (length prefix included) this file builds under that name, and decodes back to the same
//!   value. A vector missing from the document, or a block the tests do not know, fails.
//! * Variant tables: every table after a `<!-- variants: TYPE -->` marker lists `[index]
//!   `Name`` (or `index | `Name``) rows; together the tables of one type must list every
//!   variant of that type, each at its wire index. A variant added without a row fails.

use std::collections::BTreeMap;
use std::fmt::Debug;

use gmhsm_proto::admin::{AdminAction, AuthorityEnd, CardRole, CeremonyKind, CeremonyStep};
use gmhsm_proto::audit::AuditEvent;
use gmhsm_proto::frame::{self, FrameHeader};
use gmhsm_proto::kind::REQUEST_NAMES;
use gmhsm_proto::request::KeyPairProtection;
use gmhsm_proto::response::PrivateKeyOut;
use gmhsm_proto::*;
use serde::de::DeserializeOwned;

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The `hex NAME` blocks of the document: each line's bytes are the hex pairs before a `#`
/// (the rest is a comment).
fn hex_blocks(doc: &str) -> BTreeMap<String, Vec<u8>> {
    let mut blocks = BTreeMap::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line.strip_prefix("```hex ") else { continue };
        let mut bytes = Vec::new();
        for l in lines.by_ref() {
            if l.starts_with("```") {
                break;
            }
            let data = l.split('#').next().unwrap_or("");
            for pair in data.split_whitespace() {
                let b = u8::from_str_radix(pair, 16)
                    .unwrap_or_else(|_| panic!("block `{name}`: `{pair}` is not a hex byte (comments follow `#`)"));
                assert_eq!(pair.len(), 2, "block `{name}`: `{pair}` is not two hex digits");
                bytes.push(b);
            }
        }
        assert!(blocks.insert(name.trim().to_string(), bytes).is_none(), "two blocks named `{name}`");
    }
    blocks
}

/// The rows of every table after a `<!-- variants: TYPE -->` marker, by type: (index, name).
fn variant_tables(doc: &str) -> BTreeMap<String, Vec<(usize, String)>> {
    let mut tables: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    let mut lines = doc.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(ty) = line.trim().strip_prefix("<!-- variants: ").and_then(|r| r.strip_suffix(" -->")) else {
            continue;
        };
        while lines.peek().is_some_and(|l| l.trim().is_empty()) {
            lines.next();
        }
        let rows = tables.entry(ty.trim().to_string()).or_default();
        let before = rows.len();
        while let Some(l) = lines.next_if(|l| l.trim_start().starts_with('|')) {
            rows.extend(table_row(l));
        }
        assert!(rows.len() > before, "the table after `<!-- variants: {ty} -->` has no variant rows");
    }
    tables
}

/// `| [N] `Name` | …` or `| N | `Name` | …`; `None` for a header or separator row.
fn table_row(line: &str) -> Option<(usize, String)> {
    let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
    let (index, name_cell) = match cells.first()?.strip_prefix('[') {
        Some(rest) => {
            let (n, name) = rest.split_once(']')?;
            (n.trim().parse().ok()?, name)
        }
        None => (cells[0].parse().ok()?, *cells.get(1)?),
    };
    let quoted = name_cell.split('`').nth(1)?;
    let name: String = quoted.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    Some((index, name))
}

/// The variant name a value's `Debug` starts with.
fn debug_name<T: Debug>(v: &T) -> String {
    format!("{v:?}").chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
}

/// Check `rows` against the enum `T`: row i names the variant with wire index i, and there is
/// no variant past the last row. A variant is decoded from its index followed by zeros (every
/// field then takes its smallest value: empty strings, `None`, zero numbers, variant 0).
fn check_enum<T: DeserializeOwned + Debug>(ty: &str, rows: &[(usize, String)]) {
    let mut rows = rows.to_vec();
    rows.sort();
    for (i, (index, name)) in rows.iter().enumerate() {
        assert_eq!(*index, i, "{ty}: the document lists {rows:?}: index {i} missing or listed twice");
        assert!(i < 128, "{ty}: one-byte variant indices assumed here");
        let mut bytes = vec![i as u8];
        bytes.extend([0u8; 256]);
        let (v, _) = postcard::take_from_bytes::<T>(&bytes)
            .unwrap_or_else(|e| panic!("{ty}: the document lists [{i}] `{name}`, the code has no variant {i}: {e}"));
        assert_eq!(&debug_name(&v), name, "{ty}: variant {i} is `{v:?}`, the document says `{name}`");
    }
    let mut past = vec![rows.len() as u8];
    past.extend([0u8; 256]);
    if let Ok((v, _)) = postcard::take_from_bytes::<T>(&past) {
        panic!("{ty}: variant {} (`{}`) has no row in docs/protocol.md", rows.len(), debug_name(&v));
    }
}

/// Checks one type's rows ([`check_enum`] for that type).
type Check = fn(&str, &[(usize, String)]);

#[test]
fn every_variant_index_in_the_document_is_the_codes() {
    let tables = variant_tables(&doc());
    let checks: [(&str, Check); 23] = [
        ("Request", check_enum::<Request>),
        ("Response", check_enum::<Response>),
        ("Status", check_enum::<Status>),
        ("Principal", check_enum::<Principal>),
        ("Result", check_enum::<Result<(), ()>>),
        ("KeyAlg", check_enum::<KeyAlg>),
        ("Mechanism", check_enum::<Mechanism>),
        ("KeyRef", check_enum::<KeyRef>),
        ("HashAlg", check_enum::<HashAlg>),
        ("Sm2Layout", check_enum::<Sm2Layout>),
        ("Sm4Mode", check_enum::<Sm4Mode>),
        ("CipherMech", check_enum::<CipherMech>),
        ("MacMech", check_enum::<MacMech>),
        ("MultiOp", check_enum::<MultiOp>),
        ("WrapWith", check_enum::<WrapWith>),
        ("KeyPairProtection", check_enum::<KeyPairProtection>),
        ("PrivateKeyOut", check_enum::<PrivateKeyOut>),
        ("AuditEvent", check_enum::<AuditEvent>),
        ("CardRole", check_enum::<CardRole>),
        ("CeremonyKind", check_enum::<CeremonyKind>),
        ("CeremonyStep", check_enum::<CeremonyStep>),
        ("AuthorityEnd", check_enum::<AuthorityEnd>),
        ("AdminAction", check_enum::<AdminAction>),
    ];
    for (ty, check) in checks {
        let rows = tables.get(ty).unwrap_or_else(|| panic!("docs/protocol.md has no `<!-- variants: {ty} -->` table"));
        check(ty, rows);
    }
    for ty in tables.keys() {
        assert!(
            checks.iter().any(|(t, _)| t == ty),
            "docs/protocol.md has a variant table for `{ty}`, which no test checks"
        );
    }
    // The request names the card's audit and the daemon's logs use are the document's.
    let mut rows = tables["Request"].clone();
    rows.sort();
    let names: Vec<&str> = rows.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, REQUEST_NAMES, "REQUEST_NAMES (proto/src/kind.rs) and the document's request tables");
}

/// One example frame of the document.
enum Example {
    Client(ClientFrame),
    Server(ServerFrame),
    Card(CardFrame),
}

impl Example {
    fn encode(&self) -> Vec<u8> {
        match self {
            Example::Client(f) => frame::encode(f),
            Example::Server(f) => frame::encode(f),
            Example::Card(f) => frame::encode(f),
        }
        .expect("encode")
    }

    /// Decode `body` (no length prefix) as this example's type; equal to the example?
    fn decodes_to_itself(&self, body: &[u8]) -> bool {
        match self {
            Example::Client(f) => frame::decode::<ClientFrame>(body).as_ref() == Ok(f),
            Example::Server(f) => frame::decode::<ServerFrame>(body).as_ref() == Ok(f),
            Example::Card(f) => frame::decode::<CardFrame>(body).as_ref() == Ok(f),
        }
    }
}

fn header(id: u64) -> FrameHeader {
    FrameHeader { version: PROTOCOL_VERSION, id }
}

fn label(s: &str) -> Label {
    Label::try_from(s).expect("label")
}

/// An SM2 public key as DER SubjectPublicKeyInfo: the curve's generator G as the point.
fn sm2_spki() -> Vec<u8> {
    let mut der = hex("3059301306072a8648ce3d020106082a811ccf5501822d03420004");
    der.extend(hex("32c4ae2c1f1981195f9904466a39c9948fe30bbff2660be1715a4589334c74c7"));
    der.extend(hex("bc3736a2f4f6779c59bdcee36b692153d0a9877cc62a474002df32e52139f0a0"));
    der
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

/// The document's examples, by block name.
fn examples() -> Vec<(&'static str, Example)> {
    let sm4_cbc_card_iv = CipherMech::Sm4 { mode: Sm4Mode::CbcCardIv, pkcs7: true };
    let client = |id, request| Example::Client(ClientFrame { header: header(id), request });
    let answer = |id, result| Example::Server(ServerFrame { header: header(id), result });
    vec![
        ("ping", client(1, Request::Ping)),
        ("get-status", client(2, Request::GetStatus)),
        (
            "generate-key-sm2",
            client(
                3,
                Request::GenerateKey {
                    label: label("demo-sm2"),
                    alg: KeyAlg::Sm2,
                    caps: Capabilities::DEFAULT,
                    domains: 0,
                },
            ),
        ),
        (
            "sign",
            client(
                4,
                Request::Sign {
                    label: label("demo-sm2"),
                    mechanism: Mechanism::sm2_default(),
                    message: b"hello".to_vec(),
                },
            ),
        ),
        (
            "verify",
            client(
                300,
                Request::Verify {
                    label: label("demo-sm2"),
                    mechanism: Mechanism::sm2_default(),
                    message: b"hello".to_vec(),
                    signature: hex("3006020101020102"),
                },
            ),
        ),
        (
            "generate-key-sm4",
            client(
                5,
                Request::GenerateKey {
                    label: label("demo-sm4"),
                    alg: KeyAlg::Sm4,
                    caps: Capabilities::ENCRYPT | Capabilities::DECRYPT,
                    domains: 1,
                },
            ),
        ),
        (
            "encrypt-sm4-cbc-card-iv",
            client(
                6,
                Request::Encrypt {
                    key: KeyRef::Label(label("demo-sm4")),
                    mechanism: sm4_cbc_card_iv.clone(),
                    data: b"secret".to_vec(),
                },
            ),
        ),
        (
            "decrypt-sm4-cbc-card-iv",
            client(
                7,
                Request::Decrypt {
                    key: KeyRef::Label(label("demo-sm4")),
                    mechanism: sm4_cbc_card_iv,
                    data: (0u8..32).collect(),
                },
            ),
        ),
        (
            "encrypt-sm4-gcm-card-nonce",
            client(
                8,
                Request::Encrypt {
                    key: KeyRef::Label(label("demo-sm4")),
                    mechanism: CipherMech::Sm4GcmCardNonce { aad: b"ctx".to_vec() },
                    data: b"secret".to_vec(),
                },
            ),
        ),
        ("response-pong", answer(1, Ok(Response::Pong))),
        (
            "response-status",
            answer(
                2,
                Ok(Response::Status(StatusInfo {
                    initialized: true,
                    error: None,
                    keys: 5,
                    boots: 2,
                    audit: AuditState { first_seq: 1, last_seq: 130, chain_break: None },
                    service_stopped: false,
                    sessions: 1,
                    requests: 1000,
                })),
            ),
        ),
        ("response-key-generated", answer(3, Ok(Response::KeyGenerated { alg: KeyAlg::Sm2, spki_der: sm2_spki() }))),
        ("response-signature", answer(4, Ok(Response::Signature(hex("3006020101020102"))))),
        ("response-verified", answer(300, Ok(Response::Verified))),
        ("response-data", answer(7, Ok(Response::Data(SecretBytes::new(b"secret".to_vec()))))),
        ("error-unknown-key", answer(4, Err(Status::UnknownKey))),
        ("error-unsupported-version", answer(9, Err(Status::UnsupportedVersion { supported: PROTOCOL_VERSION }))),
        (
            "card-frame",
            Example::Card(CardFrame {
                header: header(7),
                principal: Principal::Application { cert_sha256: [0xab; 32] },
                session: 3,
                request: Request::Ping,
            }),
        ),
        (
            "card-frame-local",
            Example::Card(CardFrame {
                header: header(8),
                principal: Principal::Local,
                session: 1,
                request: Request::GetStatus,
            }),
        ),
    ]
}

fn plain_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

#[test]
fn golden_vectors_are_the_documents_hex() {
    let blocks = hex_blocks(&doc());
    let examples = examples();
    for (name, example) in &examples {
        let want = example.encode();
        let got = blocks.get(*name).unwrap_or_else(|| {
            panic!("docs/protocol.md has no ```hex {name} block; the frame is:\n{}", plain_hex(&want))
        });
        assert_eq!(
            plain_hex(got),
            plain_hex(&want),
            "```hex {name}: the document's bytes (left) are not the code's (right)"
        );
        let len = u32::from_be_bytes(got[..4].try_into().expect("a length prefix")) as usize;
        assert_eq!(len, got.len() - 4, "```hex {name}: the length prefix is not the body's length");
        assert!(example.decodes_to_itself(&got[4..]), "```hex {name} does not decode to its value");
    }
    for name in blocks.keys() {
        assert!(
            examples.iter().any(|(n, _)| n == name),
            "docs/protocol.md has a ```hex {name} block that no test checks"
        );
    }
}

/// The parsers above find what they should, so the tests cannot pass on an empty reading.
#[test]
fn the_parsers_read_rows_and_blocks() {
    assert_eq!(table_row("| [12] `Decrypt` | `key` | x |"), Some((12, "Decrypt".into())));
    assert_eq!(table_row("| 1 | `UnsupportedVersion { supported }` | 2 |"), Some((1, "UnsupportedVersion".into())));
    assert_eq!(table_row("|---|---|"), None);
    assert_eq!(table_row("| request | fields | answer |"), None);
    let blocks = hex_blocks("x\n```hex a\n00 01  # two\nff # three\n```\n```text\n00\n```\n");
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks["a"], [0, 1, 0xff]);
    let tables = variant_tables(
        "<!-- variants: T -->\n\n| i | n |\n|---|---|\n| 0 | `A` |\n| 1 | `B { x }` |\nafter\n| 9 | `Z` |\n",
    );
    assert_eq!(tables["T"], [(0, "A".to_string()), (1, "B".to_string())]);
}
