use super::*;
use gmhsm_proto::frame::MAX_MESSAGE_LEN;

/// A polling read does not block while it polls: with a 5 ms read timeout on the socket
/// and the answer 50 ms away, the blocking read times out and the polling one gets it.
#[test]
fn polling_reads_outlast_a_blocking_timeout() {
    for (spin, expect_data) in [(Duration::ZERO, false), (Duration::from_millis(100), true)] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let writer = std::thread::spawn(move || {
            let (mut peer, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_millis(50));
            let _ = peer.write_all(b"late");
            std::thread::sleep(Duration::from_millis(50));
        });
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        let mut polled = PolledTcp { tcp, spin };
        let mut buf = [0u8; 16];
        match polled.read(&mut buf) {
            Ok(n) => assert!(expect_data && &buf[..n] == b"late", "spin {spin:?}: got {:?}", &buf[..n]),
            Err(e) => assert!(!expect_data, "spin {spin:?}: {e}"),
        }
        writer.join().unwrap();
    }
}

/// A polled read returns what the peer sent, whether it comes within the polling window
/// or after it, and the end of the stream as 0.
#[test]
fn polled_reads_return_what_was_sent() {
    for spin in [Duration::ZERO, Duration::from_micros(50), Duration::from_secs(60)] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let writer = std::thread::spawn(move || {
            let (mut peer, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_millis(2));
            peer.write_all(b"answer").unwrap();
        });
        let mut polled = PolledTcp { tcp: TcpStream::connect(addr).unwrap(), spin };
        let mut got = Vec::new();
        let mut buf = [0u8; 16];
        loop {
            match polled.read(&mut buf).unwrap() {
                0 => break,
                n => got.extend_from_slice(&buf[..n]),
            }
        }
        writer.join().unwrap();
        assert_eq!(got, b"answer", "spin {spin:?}");
    }
}

#[test]
fn labels_are_checked_before_sending() {
    assert!(to_label("k1").is_ok());
    assert!(to_label(&"a".repeat(64)).is_ok());
    assert!(matches!(to_label(&"a".repeat(65)), Err(ClientError::InvalidArgument(_))));
    assert!(matches!(to_label(""), Err(ClientError::InvalidArgument(_))));
}

#[test]
fn oversized_message_is_refused() {
    assert!(check_message(&vec![0; MAX_MESSAGE_LEN]).is_ok());
    assert!(matches!(check_message(&vec![0; MAX_MESSAGE_LEN + 1]), Err(ClientError::InvalidArgument(_))));
}

#[test]
fn sm2_id_bound() {
    assert!(sm2_with_id(b"1234567812345678").is_ok());
    assert!(sm2_with_id(&[0; 129]).is_err());
}
