use super::*;
use crate::{Label, Mechanism};

fn frame(id: u64) -> ClientFrame {
    ClientFrame {
        header: FrameHeader { version: crate::PROTOCOL_VERSION, id },
        request: Request::Sign {
            label: Label::try_from("k1").unwrap(),
            mechanism: Mechanism::sm2_default(),
            message: alloc::vec![1, 2, 3],
        },
    }
}

/// An answer split and relayed under another id is byte for byte the frame encoded
/// whole, and decodes to the same result; a status is decoded; bad tags and truncation are
/// malformed with the header kept.
#[test]
fn answers_relay_without_decoding() {
    let sigs = Response::Signatures((0..3u8).map(|i| serde_bytes::ByteBuf::from(alloc::vec![i; 70])).collect());
    for result in [Ok(sigs), Ok(Response::Pong), Err(Status::Busy), Err(Status::InvalidArgument)] {
        let card = ServerFrame { header: FrameHeader { version: crate::PROTOCOL_VERSION, id: 5 }, result };
        let body = postcard::to_allocvec(&card).unwrap();
        let (header, split) = split_answer(&body).unwrap();
        assert_eq!(header, card.header);
        let client = FrameHeader { version: crate::PROTOCOL_VERSION, id: u64::MAX - 1 };
        let want = ServerFrame { header: client, result: card.result.clone() };
        let mut got = alloc::vec![9u8];
        match split {
            Ok(response) => encode_answer(&client, response, &mut got).unwrap(),
            Err(status) => {
                assert_eq!(Err(status), card.result);
                encode_into(&ServerFrame { header: client, result: Err(status) }, &mut got).unwrap()
            }
        }
        assert_eq!(got[1..], encode(&want).unwrap()[..]);
        assert_eq!(decode::<ServerFrame>(&got[5..]).unwrap(), want);
    }
    // An `Ok` tag followed by bytes that are no response is relayed as it is (the daemon
    // does not decode responses); the client's decoding then refuses the frame.
    let mut body = postcard::to_allocvec(&FrameHeader { version: 1, id: 42 }).unwrap();
    body.extend_from_slice(&[0, 0xee, 0xff]);
    assert_eq!(split_answer(&body).unwrap().1, Ok(&[0xee, 0xff][..]));
    let mut relayed = Vec::new();
    encode_answer(&FrameHeader { version: 1, id: 43 }, &[0xee, 0xff], &mut relayed).unwrap();
    assert!(matches!(
        decode::<ServerFrame>(&relayed[4..]),
        Err(FrameError::Malformed { header: Some(FrameHeader { version: 1, id: 43 }) })
    ));
    let header = postcard::to_allocvec(&FrameHeader { version: 1, id: 42 }).unwrap();
    for tail in [&[][..], &[0], &[2, 0], &[1], &[1, 0xff, 0xff, 0xff, 0xff, 0xff]] {
        let mut body = header.clone();
        body.extend_from_slice(tail);
        let err = split_answer(&body).unwrap_err();
        assert_eq!(err, FrameError::Malformed { header: Some(FrameHeader { version: 1, id: 42 }) }, "{tail:?}");
    }
}

#[test]
fn round_trip_byte_by_byte() {
    let mut wire = encode(&frame(7)).unwrap();
    wire.extend(encode(&frame(8)).unwrap());
    let mut d = Deframer::new();
    let mut got = alloc::vec::Vec::new();
    for b in wire {
        d.push(&[b]);
        while let Some(body) = d.next_frame().unwrap() {
            got.push(decode::<ClientFrame>(&body).unwrap());
        }
    }
    assert_eq!(got, alloc::vec![frame(7), frame(8)]);
    assert_eq!(d.buffered(), 0);
}

#[test]
fn oversized_frame_is_skipped_and_stream_resyncs() {
    let big = (MAX_FRAME_LEN + 10) as u32;
    let mut wire = big.to_be_bytes().to_vec();
    wire.extend(core::iter::repeat_n(0xAA, big as usize));
    wire.extend(encode(&frame(9)).unwrap());
    let mut d = Deframer::new();
    let mut errors = 0;
    let mut frames = alloc::vec::Vec::new();
    for chunk in wire.chunks(7000) {
        d.push(chunk);
        loop {
            match d.next_frame() {
                Ok(Some(b)) => frames.push(decode::<ClientFrame>(&b).unwrap()),
                Ok(None) => break,
                Err(FrameError::TooLarge { len }) => {
                    assert_eq!(len, big as usize);
                    errors += 1
                }
                Err(e) => panic!("{e:?}"),
            }
        }
    }
    assert_eq!(errors, 1);
    assert_eq!(frames, alloc::vec![frame(9)]);
}

#[test]
fn malformed_body_still_yields_header() {
    let mut body = postcard::to_allocvec(&FrameHeader { version: 1, id: 42 }).unwrap();
    body.extend([0xff, 0xff, 0xff]);
    match decode::<ClientFrame>(&body) {
        Err(FrameError::Malformed { header: Some(h) }) => assert_eq!(h.id, 42),
        other => panic!("{other:?}"),
    }
    assert!(matches!(decode::<ClientFrame>(&[]), Err(FrameError::Malformed { header: None })));
}

#[test]
fn label_over_bound_is_rejected() {
    // A 65-byte label encoded by hand: variant index of GenerateKey (2), then the string.
    let mut body = postcard::to_allocvec(&FrameHeader { version: 1, id: 1 }).unwrap();
    body.push(2);
    body.push(65);
    body.extend(core::iter::repeat_n(b'a', 65));
    body.push(0);
    assert!(decode::<ClientFrame>(&body).is_err());
}

#[test]
fn card_frame_from_raw_request_is_byte_identical() {
    let client = encode(&frame(5)).unwrap();
    let (decoded, range) = decode_client(&client[4..]).unwrap();
    assert_eq!(decoded, frame(5));
    for principal in [Principal::Local, Principal::Application { cert_sha256: [7; 32] }] {
        let header = FrameHeader { version: crate::PROTOCOL_VERSION, id: 300 };
        let whole =
            CardFrame { header, principal: principal.clone(), session: 1 << 40, request: decoded.request.clone() };
        let mut spliced = alloc::vec![0xEE];
        encode_card_frame(&header, &principal, 1 << 40, &client[4..][range.clone()], &mut spliced).unwrap();
        assert_eq!(spliced[0], 0xEE, "appends");
        assert_eq!(&spliced[1..], &encode(&whole).unwrap()[..]);
    }
}

#[test]
fn decode_client_agrees_with_decode() {
    let good = encode(&frame(3)).unwrap()[4..].to_vec();
    let mut trailing = good.clone();
    trailing.extend([1, 2, 3]);
    let mut bad = good.clone();
    bad.truncate(bad.len() - 2);
    for body in [good, trailing, bad, alloc::vec![], alloc::vec![1, 9]] {
        let whole = decode::<ClientFrame>(&body);
        let split = decode_client(&body);
        assert_eq!(whole, split.clone().map(|(f, _)| f));
        if let Ok((_, r)) = split {
            assert_eq!(postcard::from_bytes::<Request>(&body[r]).ok(), whole.ok().map(|f| f.request));
        }
    }
}

#[test]
fn encode_into_appends_and_leaves_buffer_on_error() {
    let mut out = alloc::vec![1, 2];
    encode_into(&frame(1), &mut out).unwrap();
    encode_into(&frame(2), &mut out).unwrap();
    let mut expect = alloc::vec![1, 2];
    expect.extend(encode(&frame(1)).unwrap());
    expect.extend(encode(&frame(2)).unwrap());
    assert_eq!(out, expect);
    let huge = ClientFrame {
        header: FrameHeader { version: 1, id: 1 },
        request: Request::Hash { alg: crate::HashAlg::Sm3, data: alloc::vec![0; MAX_FRAME_LEN] },
    };
    assert_eq!(encode_into(&huge, &mut out), Err(FrameError::Encode));
    assert_eq!(out, expect);
}

#[test]
fn spare_commit_and_borrowed_bodies_across_oversized_frames() {
    let big = (MAX_FRAME_LEN + 3) as u32;
    let mut wire = encode(&frame(1)).unwrap();
    wire.extend(big.to_be_bytes());
    wire.extend(core::iter::repeat_n(0x55, big as usize));
    for id in 2..40 {
        wire.extend(encode(&frame(id)).unwrap());
    }
    for chunk_len in [1, 5, 333, 4096, 70_000] {
        let mut d = Deframer::new();
        let (mut ids, mut too_large) = (alloc::vec::Vec::new(), 0);
        for chunk in wire.chunks(chunk_len) {
            let room = d.spare(chunk.len());
            room[..chunk.len()].copy_from_slice(chunk);
            d.commit(chunk.len());
            loop {
                match d.next_body() {
                    Ok(Some(b)) => ids.push(decode::<ClientFrame>(b).unwrap().header.id),
                    Ok(None) => break,
                    Err(FrameError::TooLarge { .. }) => too_large += 1,
                    Err(e) => panic!("{e:?}"),
                }
            }
        }
        assert_eq!(too_large, 1);
        assert_eq!(ids, (1..40).collect::<alloc::vec::Vec<u64>>());
        assert_eq!(d.buffered(), 0);
        assert!(d.buf.len() <= Deframer::KEEP.max(chunk_len), "buffer released: {}", d.buf.len());
    }
}
