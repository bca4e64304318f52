"""A gmhsm client written from docs/protocol.md alone, with the Python standard library.

The private link is TLS 1.3 with a client certificate (``ssl``); on it travel frames of a
4-byte big-endian length and a postcard message (``Writer`` / ``Reader`` below). This module
encodes the requests an application commonly sends and decodes their answers; other variants
are one more class each, from the tables of the document.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
from dataclasses import dataclass, field

PROTOCOL_VERSION = 1
MAX_FRAME_LEN = (1 << 20) + 4096
SM2_DEFAULT_ID = b"1234567812345678"

# Capabilities (a u32 bit set).
SIGN, VERIFY, ENCRYPT, DECRYPT, WRAP, UNWRAP = 1, 2, 4, 8, 16, 32
DERIVE, MAC, EXPORT_WRAPPED, RAW_RSA, CALLER_IV = 64, 128, 256, 512, 1024

# KeyAlg variant indices.
KEY_ALGS = ["Sm2", "Rsa2048", "Rsa3072", "Rsa4096", "EcdsaP256", "Sm4", "HmacSm3"]
SM2, RSA2048, RSA3072, RSA4096, ECDSA_P256, SM4, HMAC_SM3 = range(7)

# Status variant indices, names and the stable codes (index + 1).
STATUS_NAMES = [
    "BadFrame", "UnsupportedVersion", "UnknownKey", "KeyExists", "WrongKeyType",
    "InvalidArgument", "SignatureInvalid", "AccessDenied", "StoreFull", "DeviceError",
    "NotInitialized", "CardUnavailable", "Internal", "FrameTooLarge", "Busy", "DecryptFailed",
    "WrongPassword", "KeyLocked", "PasswordRequired", "UnknownHandle", "ServiceStopped",
    "QuotaExceeded",
]

RESPONSE_NAMES = [
    "Pong", "Status", "KeyGenerated", "PublicKey", "Signature", "Verified", "Deleted", "Keys",
    "Audit", "Random", "Digest", "Data", "Handle", "SessionKey", "Agreement", "AgreementReply",
    "KeyInfo", "Done", "AdminNonce", "AdminState", "CardEnrolled", "CardShare",
    "DomainAuthorization", "KeyPair", "KeyExportPolicy", "Signatures", "Plaintexts",
    "AuditCheckpoint",
]


class ProtocolError(Exception):
    """The peer sent bytes that are not a frame of this protocol."""


class StatusError(Exception):
    """The server answered ``Err(Status)``."""

    def __init__(self, index: int, supported: int | None = None):
        self.index = index
        self.name = STATUS_NAMES[index] if index < len(STATUS_NAMES) else f"Status[{index}]"
        self.supported = supported
        detail = f" (server speaks version {supported})" if supported is not None else ""
        super().__init__(f"{self.name}{detail}")

    def __eq__(self, other):
        return isinstance(other, StatusError) and (self.index, self.supported) == (other.index, other.supported)

    def __hash__(self):
        return hash((self.index, self.supported))


# ---------------------------------------------------------------------------------------------
# postcard


class Writer:
    """Appends postcard values (docs/protocol.md §Encoding)."""

    def __init__(self):
        self.buf = bytearray()

    def u8(self, v: int) -> "Writer":
        self.buf.append(v)
        return self

    def bool(self, v: bool) -> "Writer":
        return self.u8(1 if v else 0)

    def varint(self, v: int) -> "Writer":
        """u16 / u32 / u64 (and enum indices, lengths): unsigned LEB128, shortest form."""
        if v < 0:
            raise ValueError("varints are unsigned")
        while v >= 0x80:
            self.buf.append((v & 0x7F) | 0x80)
            v >>= 7
        self.buf.append(v)
        return self

    def bytes(self, b: bytes, max_len: int | None = None) -> "Writer":
        if max_len is not None and len(b) > max_len:
            raise ValueError(f"{len(b)} bytes, at most {max_len}")
        self.varint(len(b))
        self.buf += b
        return self

    def string(self, s: str, max_len: int) -> "Writer":
        return self.bytes(s.encode("utf-8"), max_len)

    def fixed(self, b: bytes, n: int) -> "Writer":
        if len(b) != n:
            raise ValueError(f"{len(b)} bytes, exactly {n} needed")
        self.buf += b
        return self


class Reader:
    """Reads postcard values from a message body."""

    def __init__(self, data: bytes):
        self.data = memoryview(data)
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ProtocolError("message ends early")
        out = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return out

    def u8(self) -> int:
        return self._take(1)[0]

    def bool(self) -> bool:
        b = self.u8()
        if b > 1:
            raise ProtocolError(f"bool byte {b:#x}")
        return b == 1

    def varint(self, bits: int = 64) -> int:
        value, shift = 0, 0
        for _ in range((bits + 6) // 7):
            b = self.u8()
            value |= (b & 0x7F) << shift
            if b < 0x80:
                if value >> bits:
                    raise ProtocolError(f"varint over {bits} bits")
                return value
            shift += 7
        raise ProtocolError(f"varint longer than a u{bits}")

    def bytes(self, max_len: int | None = None) -> bytes:
        n = self.varint(32)
        if max_len is not None and n > max_len:
            raise ProtocolError(f"{n} bytes, at most {max_len}")
        return self._take(n)

    def string(self, max_len: int) -> str:
        raw = self.bytes(max_len)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ProtocolError(f"string is not UTF-8: {e}") from None

    def fixed(self, n: int) -> bytes:
        return self._take(n)

    def option(self, read):
        tag = self.u8()
        if tag == 0:
            return None
        if tag == 1:
            return read()
        raise ProtocolError(f"option tag {tag:#x}")

    def seq(self, read) -> list:
        return [read() for _ in range(self.varint(32))]


# ---------------------------------------------------------------------------------------------
# Mechanisms


@dataclass(frozen=True)
class Sm2Sm3:
    """Mechanism [0]: SM2 signature over SM3(Z ‖ M)."""

    distid: bytes = SM2_DEFAULT_ID

    def encode(self, w: Writer):
        w.varint(0).bytes(self.distid, 128)


@dataclass(frozen=True)
class EcdsaP256Sha256:
    """Mechanism [4]."""

    def encode(self, w: Writer):
        w.varint(4)


# Sm4Mode indices; 1..4 carry the caller's 16-byte IV, 5..8 leave it to the card.
ECB, CBC, CFB, OFB, CTR, CBC_CARD_IV, CFB_CARD_IV, OFB_CARD_IV, CTR_CARD_IV = range(9)


@dataclass(frozen=True)
class Sm4:
    """CipherMech [4]: SM4 in a confidentiality mode."""

    mode: int
    pkcs7: bool = False
    iv: bytes | None = None

    def encode(self, w: Writer):
        w.varint(4).varint(self.mode)
        if CBC <= self.mode <= CTR:
            w.fixed(self.iv or b"", 16)
        w.bool(self.pkcs7)


@dataclass(frozen=True)
class Sm4GcmCardNonce:
    """CipherMech [6]: SM4-GCM with a nonce the card draws."""

    aad: bytes = b""

    def encode(self, w: Writer):
        w.varint(6).bytes(self.aad)


@dataclass(frozen=True)
class Sm2Cipher:
    """CipherMech [0]: SM2 encryption; layout 0 C1C3C2, 1 C1C2C3, 2 DER."""

    layout: int = 0

    def encode(self, w: Writer):
        w.varint(0).varint(self.layout)


# ---------------------------------------------------------------------------------------------
# Requests: each encodes its variant index, then its fields.


@dataclass(frozen=True)
class Ping:
    def encode(self, w: Writer):
        w.varint(0)


@dataclass(frozen=True)
class GetStatus:
    def encode(self, w: Writer):
        w.varint(1)


@dataclass(frozen=True)
class GenerateKey:
    label: str
    alg: int
    caps: int = 0
    domains: int = 0

    def encode(self, w: Writer):
        w.varint(2).string(self.label, 64).varint(self.alg).varint(self.caps).varint(self.domains)


@dataclass(frozen=True)
class ExportPublicKey:
    label: str

    def encode(self, w: Writer):
        w.varint(3).string(self.label, 64)


@dataclass(frozen=True)
class Sign:
    label: str
    message: bytes
    mechanism: object = field(default_factory=Sm2Sm3)

    def encode(self, w: Writer):
        w.varint(4).string(self.label, 64)
        self.mechanism.encode(w)
        w.bytes(self.message)


@dataclass(frozen=True)
class Verify:
    label: str
    message: bytes
    signature: bytes
    mechanism: object = field(default_factory=Sm2Sm3)

    def encode(self, w: Writer):
        w.varint(5).string(self.label, 64)
        self.mechanism.encode(w)
        w.bytes(self.message).bytes(self.signature)


@dataclass(frozen=True)
class DeleteKey:
    label: str

    def encode(self, w: Writer):
        w.varint(6).string(self.label, 64)


@dataclass(frozen=True)
class ListKeys:
    def encode(self, w: Writer):
        w.varint(7)


@dataclass(frozen=True)
class GenerateRandom:
    length: int

    def encode(self, w: Writer):
        w.varint(9).varint(self.length)


@dataclass(frozen=True)
class Encrypt:
    """Request [11]; `key` is a label (KeyRef [0]) or a session handle (KeyRef [1])."""

    key: str | int
    mechanism: object
    data: bytes
    INDEX = 11

    def encode(self, w: Writer):
        w.varint(self.INDEX)
        if isinstance(self.key, int):
            w.varint(1).varint(self.key)
        else:
            w.varint(0).string(self.key, 64)
        self.mechanism.encode(w)
        w.bytes(self.data)


@dataclass(frozen=True)
class Decrypt(Encrypt):
    INDEX = 12


@dataclass(frozen=True)
class GetKeyInfo:
    label: str

    def encode(self, w: Writer):
        w.varint(25).string(self.label, 64)


# ---------------------------------------------------------------------------------------------
# Responses


@dataclass(frozen=True)
class AuditState:
    first_seq: int
    last_seq: int
    chain_break: int | None


@dataclass(frozen=True)
class StatusInfo:
    initialized: bool
    error: str | None
    keys: int
    boots: int
    audit: AuditState
    service_stopped: bool
    sessions: int
    requests: int


@dataclass(frozen=True)
class Principal:
    """`cert_sha256` set for Principal [0] Application, `None` for [1] Local."""

    cert_sha256: bytes | None

    def encode(self, w: Writer):
        if self.cert_sha256 is None:
            w.varint(1)
        else:
            w.varint(0).fixed(self.cert_sha256, 32)


@dataclass(frozen=True)
class KeyInfo:
    alg: int
    caps: int
    domains: int
    owner: Principal
    spki_der: bytes
    password: bool


@dataclass(frozen=True)
class Response:
    """A decoded `Ok` answer: its variant name and value (None for a variant without fields)."""

    name: str
    value: object = None


def _status_info(r: Reader) -> StatusInfo:
    return StatusInfo(
        initialized=r.bool(),
        error=r.option(lambda: r.string(96)),
        keys=r.varint(32),
        boots=r.varint(32),
        audit=AuditState(r.varint(), r.varint(), r.option(r.varint)),
        service_stopped=r.bool(),
        sessions=r.varint(32),
        requests=r.varint(),
    )


def _principal(r: Reader) -> Principal:
    index = r.varint(32)
    if index == 0:
        return Principal(r.fixed(32))
    if index == 1:
        return Principal(None)
    raise ProtocolError(f"Principal variant {index}")


def _key_info(r: Reader) -> KeyInfo:
    return KeyInfo(r.varint(32), r.varint(32), r.varint(32), _principal(r), r.bytes(), r.bool())


# Response index -> how to read its fields (None: no fields).
_RESPONSE_READERS = {
    0: None,
    1: _status_info,
    2: lambda r: (r.varint(32), r.bytes()),
    3: lambda r: (r.varint(32), r.bytes()),
    4: Reader.bytes,
    5: None,
    6: None,
    7: lambda r: r.seq(lambda: (r.string(64), r.varint(32))),
    9: Reader.bytes,
    10: Reader.bytes,
    11: Reader.bytes,
    12: lambda r: r.varint(32),
    16: _key_info,
    17: None,
}


def decode_response(r: Reader) -> Response:
    index = r.varint(32)
    if index not in _RESPONSE_READERS:
        name = RESPONSE_NAMES[index] if index < len(RESPONSE_NAMES) else f"Response[{index}]"
        raise ProtocolError(f"response {name} is not decoded by this client")
    read = _RESPONSE_READERS[index]
    return Response(RESPONSE_NAMES[index], None if read is None else read(r))


def decode_status(r: Reader) -> StatusError:
    index = r.varint(32)
    if index >= len(STATUS_NAMES):
        raise ProtocolError(f"unknown status {index}")
    return StatusError(index, r.varint(16) if index == 1 else None)


# ---------------------------------------------------------------------------------------------
# Frames


def _framed(body: bytes) -> bytes:
    if len(body) > MAX_FRAME_LEN:
        raise ValueError(f"frame of {len(body)} bytes, at most {MAX_FRAME_LEN}")
    return struct.pack(">I", len(body)) + body


def encode_client_frame(frame_id: int, request) -> bytes:
    """ClientFrame { header: { version, id }, request }, length prefix included."""
    w = Writer().varint(PROTOCOL_VERSION).varint(frame_id)
    request.encode(w)
    return _framed(bytes(w.buf))


def encode_card_frame(frame_id: int, principal: Principal, session: int, request) -> bytes:
    """CardFrame { header, principal, session, request } (the daemon's frame to the card)."""
    w = Writer().varint(PROTOCOL_VERSION).varint(frame_id)
    principal.encode(w)
    w.varint(session)
    request.encode(w)
    return _framed(bytes(w.buf))


def decode_server_frame(body: bytes) -> tuple[int, int, Response | StatusError]:
    """A ServerFrame body (no length prefix) -> (version, id, Response or StatusError)."""
    r = Reader(body)
    version, frame_id = r.varint(16), r.varint(64)
    tag = r.u8()
    if tag == 0:
        return version, frame_id, decode_response(r)
    if tag == 1:
        return version, frame_id, decode_status(r)
    raise ProtocolError(f"result tag {tag:#x}")


# ---------------------------------------------------------------------------------------------
# Connection


@dataclass
class Profile:
    address: str
    server_name: str
    ca_cert: str
    client_cert: str
    client_key: str
    timeout: float = 30.0

    @classmethod
    def load(cls, path: str) -> "Profile":
        try:
            import tomllib
        except ImportError:
            raise ValueError("reading a profile needs Python 3.11 or later (tomllib)") from None
        with open(path, "rb") as f:
            t = tomllib.load(f)
        base = os.path.dirname(os.path.abspath(path))
        missing = [k for k in ("address", "server_name", "ca_cert", "client_cert", "client_key") if k not in t]
        if missing:
            raise ValueError(f"{path}: missing {', '.join(missing)}")
        here = lambda p: p if os.path.isabs(p) else os.path.join(base, p)  # noqa: E731
        return cls(t["address"], t["server_name"], here(t["ca_cert"]), here(t["client_cert"]),
                   here(t["client_key"]), float(t.get("timeout_secs", 30)))


def _host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address `{address}` is not host:port")
    return host.strip("[]"), int(port)


class Client:
    """One TLS connection to the appliance; one request at a time."""

    def __init__(self, profile: Profile):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_verify_locations(profile.ca_cert)
        ctx.load_cert_chain(profile.client_cert, profile.client_key)
        raw = socket.create_connection(_host_port(profile.address), timeout=profile.timeout)
        try:
            self.sock = ctx.wrap_socket(raw, server_hostname=profile.server_name)
        except BaseException:
            raw.close()
            raise
        self.next_id = 1

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _read_exact(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ProtocolError("the server closed the connection")
            out += chunk
        return bytes(out)

    def call(self, request) -> Response:
        """Send one request and return its `Ok` answer; an `Err` answer raises StatusError."""
        frame_id = self.next_id
        self.next_id += 1
        self.sock.sendall(encode_client_frame(frame_id, request))
        (length,) = struct.unpack(">I", self._read_exact(4))
        if length > MAX_FRAME_LEN:
            raise ProtocolError(f"answer of {length} bytes")
        version, answer_id, result = decode_server_frame(self._read_exact(length))
        if answer_id != frame_id:
            if isinstance(result, StatusError):
                raise result
            raise ProtocolError(f"answer to frame {answer_id}, expected {frame_id}")
        if version != PROTOCOL_VERSION:
            raise ProtocolError(f"answer of protocol version {version}")
        if isinstance(result, StatusError):
            raise result
        return result

    def expect(self, request, name: str):
        """`call`, checking the answer is the response `name`; its value."""
        response = self.call(request)
        if response.name != name:
            raise ProtocolError(f"{type(request).__name__} answered {response.name}, expected {name}")
        return response.value
