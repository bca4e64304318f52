use super::*;

/// The wire index of a request is its postcard variant index: pinned for the requests
/// appended last, so that a reordering fails here before it breaks deployed clients.
#[test]
fn appended_requests_keep_their_indices() {
    let kek = Label::try_from("kek").unwrap();
    let cases = [
        (Request::ServiceStart, 47u8),
        (Request::GenerateKeyPair { alg: KeyAlg::Sm2, protection: KeyPairProtection::Wrapped { kek } }, 48),
        (Request::KeyExportPolicy { set: None }, 49),
        (
            Request::SignBatch {
                label: Label::try_from("k").unwrap(),
                mechanism: Mechanism::Sm2Digest,
                messages: alloc::vec![],
            },
            50,
        ),
        (
            Request::DecryptBatch {
                label: Label::try_from("k").unwrap(),
                mechanism: CipherMech::Sm2 { layout: crate::Sm2Layout::C1C3C2 },
                ciphertexts: alloc::vec![],
            },
            51,
        ),
    ];
    for (r, index) in cases {
        assert_eq!(postcard::to_allocvec(&r).unwrap()[0], index, "{r:?}");
    }
    let plain = Request::GenerateKeyPair { alg: KeyAlg::EcdsaP256, protection: KeyPairProtection::Plaintext };
    assert_eq!(postcard::to_allocvec(&plain).unwrap(), [48, 4, 1]);
}

/// A `SignBatch` decodes up to the bound and not past it, whatever the messages' sizes.
#[test]
fn sign_batches_past_the_bound_do_not_decode() {
    let batch = |n: usize| Request::SignBatch {
        label: Label::try_from("k").unwrap(),
        mechanism: Mechanism::Sm2Digest,
        messages: alloc::vec![serde_bytes::ByteBuf::new(); n],
    };
    for n in [0, 1, MAX_SIGN_BATCH] {
        let bytes = postcard::to_allocvec(&batch(n)).unwrap();
        assert_eq!(postcard::from_bytes::<Request>(&bytes).unwrap(), batch(n));
    }
    for n in [MAX_SIGN_BATCH + 1, 1 << 20] {
        let bytes = postcard::to_allocvec(&batch(n)).unwrap();
        assert!(postcard::from_bytes::<Request>(&bytes).is_err(), "{n} messages decoded");
    }
    let batch = |n: usize| Request::DecryptBatch {
        label: Label::try_from("k").unwrap(),
        mechanism: CipherMech::Sm2 { layout: crate::Sm2Layout::Der },
        ciphertexts: alloc::vec![serde_bytes::ByteBuf::from(alloc::vec![1u8; 3]); n],
    };
    for n in [0, 1, MAX_DECRYPT_BATCH] {
        let bytes = postcard::to_allocvec(&batch(n)).unwrap();
        assert_eq!(postcard::from_bytes::<Request>(&bytes).unwrap(), batch(n));
    }
    for n in [MAX_DECRYPT_BATCH + 1, 4096] {
        let bytes = postcard::to_allocvec(&batch(n)).unwrap();
        assert!(postcard::from_bytes::<Request>(&bytes).is_err(), "{n} ciphertexts decoded");
    }
}

/// Byte fields go through `serde_bytes` (one copy instead of one serde call per byte) and
/// keep postcard's sequence encoding: a varint length, then the bytes. The same value
/// encoded as a plain `Vec<u8>` sequence decodes to the same request.
#[test]
fn byte_fields_keep_the_sequence_encoding() {
    #[derive(Serialize)]
    struct AsSeq {
        variant: u8,
        alg: u8,
        data: Vec<u8>,
    }
    let data: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
    let req = Request::Hash { alg: HashAlg::Sm3, data: data.clone() };
    let bytes = postcard::to_allocvec(&req).unwrap();
    let index = bytes[0];
    let seq = postcard::to_allocvec(&AsSeq { variant: index, alg: bytes[1], data: data.clone() }).unwrap();
    assert_eq!(bytes, seq);
    assert_eq!(&bytes[2..4], [0xac, 0x02], "varint 300");
    assert_eq!(postcard::from_bytes::<Request>(&seq).unwrap(), req);
    // A length beyond the input is an error, not a panic or a short read.
    let mut truncated = seq.clone();
    truncated.truncate(100);
    assert!(postcard::from_bytes::<Request>(&truncated).is_err());
}
