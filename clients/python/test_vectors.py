"""The Python client against the example frames of docs/protocol.md (the same blocks the Rust
types are checked against in proto/tests/protocol_doc.rs).

    python3 -m unittest discover -s clients/python -v
"""

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import gmhsm_client as g  # noqa: E402

DOC = os.path.join(HERE, "..", "..", "docs", "protocol.md")


def hex_blocks(text: str) -> dict:
    """The ```hex NAME blocks: the hex pairs of each line before a `#`."""
    blocks, lines = {}, iter(text.splitlines())
    for line in lines:
        if not line.startswith("```hex "):
            continue
        name, data = line[len("```hex "):].strip(), bytearray()
        for body in lines:
            if body.startswith("```"):
                break
            data += bytes.fromhex(body.split("#")[0])
        if name in blocks:
            raise AssertionError(f"two blocks named {name}")
        blocks[name] = bytes(data)
    return blocks


SPKI = bytes.fromhex(
    "3059301306072a8648ce3d020106082a811ccf5501822d03420004"
    "32c4ae2c1f1981195f9904466a39c9948fe30bbff2660be1715a4589334c74c7"
    "bc3736a2f4f6779c59bdcee36b692153d0a9877cc62a474002df32e52139f0a0"
)
SIG = bytes.fromhex("3006020101020102")
CBC = g.Sm4(g.CBC_CARD_IV, pkcs7=True)

# Frames this client sends: name -> the bytes it must encode.
SENT = {
    "ping": lambda: g.encode_client_frame(1, g.Ping()),
    "get-status": lambda: g.encode_client_frame(2, g.GetStatus()),
    "generate-key-sm2": lambda: g.encode_client_frame(3, g.GenerateKey("demo-sm2", g.SM2)),
    "sign": lambda: g.encode_client_frame(4, g.Sign("demo-sm2", b"hello")),
    "verify": lambda: g.encode_client_frame(300, g.Verify("demo-sm2", b"hello", SIG)),
    "generate-key-sm4": lambda: g.encode_client_frame(5, g.GenerateKey("demo-sm4", g.SM4, g.ENCRYPT | g.DECRYPT, 1)),
    "encrypt-sm4-cbc-card-iv": lambda: g.encode_client_frame(6, g.Encrypt("demo-sm4", CBC, b"secret")),
    "decrypt-sm4-cbc-card-iv": lambda: g.encode_client_frame(7, g.Decrypt("demo-sm4", CBC, bytes(range(32)))),
    "encrypt-sm4-gcm-card-nonce": lambda: g.encode_client_frame(
        8, g.Encrypt("demo-sm4", g.Sm4GcmCardNonce(b"ctx"), b"secret")
    ),
    "card-frame": lambda: g.encode_card_frame(7, g.Principal(b"\xab" * 32), 3, g.Ping()),
    "card-frame-local": lambda: g.encode_card_frame(8, g.Principal(None), 1, g.GetStatus()),
}

# Frames this client receives: name -> (id, the decoded answer).
RECEIVED = {
    "response-pong": (1, g.Response("Pong")),
    "response-status": (
        2,
        g.Response("Status", g.StatusInfo(True, None, 5, 2, g.AuditState(1, 130, None), False, 1, 1000)),
    ),
    "response-key-generated": (3, g.Response("KeyGenerated", (g.SM2, SPKI))),
    "response-signature": (4, g.Response("Signature", SIG)),
    "response-verified": (300, g.Response("Verified")),
    "response-data": (7, g.Response("Data", b"secret")),
    "error-unknown-key": (4, g.StatusError(2)),
    "error-unsupported-version": (9, g.StatusError(1, supported=1)),
}


class Vectors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(DOC, encoding="utf-8") as f:
            cls.blocks = hex_blocks(f.read())

    def test_every_block_is_checked(self):
        self.assertGreaterEqual(len(self.blocks), len(SENT) + len(RECEIVED))
        for name in self.blocks:
            self.assertIn(name, {**SENT, **RECEIVED}, f"```hex {name} has no Python expectation")

    def test_sent_frames_encode_to_the_documents_bytes(self):
        for name, encode in SENT.items():
            with self.subTest(name):
                self.assertEqual(encode().hex(" "), self.blocks[name].hex(" "))

    def test_received_frames_decode_to_their_values(self):
        for name, (frame_id, want) in RECEIVED.items():
            with self.subTest(name):
                frame = self.blocks[name]
                self.assertEqual(int.from_bytes(frame[:4], "big"), len(frame) - 4)
                self.assertEqual(g.decode_server_frame(frame[4:]), (1, frame_id, want))


class Encoding(unittest.TestCase):
    def test_varints(self):
        for value, wire in [(0, "00"), (127, "7f"), (128, "8001"), (300, "ac02"), (2**64 - 1, "ffffffffffffffffff01")]:
            self.assertEqual(g.Writer().varint(value).buf.hex(), wire)
            self.assertEqual(g.Reader(bytes.fromhex(wire)).varint(), value)
        with self.assertRaises(g.ProtocolError):
            g.Reader(bytes.fromhex("ffffffffffffffffff02")).varint()  # 65 bits
        with self.assertRaises(g.ProtocolError):
            g.Reader(bytes.fromhex("ffff04")).varint(16)  # over a u16

    def test_bounds_and_truncation(self):
        with self.assertRaises(ValueError):
            g.Writer().string("x" * 65, 64)
        with self.assertRaises(g.ProtocolError):
            g.Reader(bytes.fromhex("05616263")).bytes()  # 5 announced, 3 there
        with self.assertRaises(g.ProtocolError):
            g.Reader(bytes.fromhex("02")).option(lambda: None)
        with self.assertRaises(g.ProtocolError):
            g.decode_server_frame(bytes.fromhex("0101001c"))  # a response this client does not read


if __name__ == "__main__":
    unittest.main()
