#!/usr/bin/env python3
"""Use a gmhsm appliance from Python: sign and verify with SM2, encrypt and decrypt with SM4,
read the card's status. Prints OK and exits 0 when every step gave what the protocol says;
otherwise prints what failed and exits 1.

    python3 clients/python/demo.py --profile STATE/client.toml

The keys are stored under the labels `py-demo-sm2` and `py-demo-sm4` and reused by later runs
(an application owns at most 1024 keys by default), or deleted with --delete-keys.
"""

import argparse
import os
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gmhsm_client as g  # noqa: E402

SM2_LABEL = "py-demo-sm2"
SM4_LABEL = "py-demo-sm4"


class Failed(Exception):
    pass


def check(condition: bool, what: str):
    if not condition:
        raise Failed(what)


def key_of(client: g.Client, label: str, alg: int) -> str:
    """Use the key `label` if the caller has it (with algorithm `alg`), else generate it."""
    try:
        info = client.expect(g.GetKeyInfo(label), "KeyInfo")
        check(info.alg == alg, f"{label} is a {g.KEY_ALGS[info.alg]} key, not {g.KEY_ALGS[alg]}")
        return "reused"
    except g.StatusError as e:
        if e.name != "UnknownKey":
            raise
    try:
        alg_out, spki = client.expect(g.GenerateKey(label, alg), "KeyGenerated")
        check(alg_out == alg, f"generated {g.KEY_ALGS[alg_out]}, asked for {g.KEY_ALGS[alg]}")
        check(alg != g.SM2 or len(spki) == 91, f"SM2 public key of {len(spki)} bytes, not 91")
        return "generated"
    except g.StatusError as e:
        if e.name != "KeyExists":  # another run generated it meanwhile
            raise
        return "reused"


def sm2_sign_verify(client: g.Client):
    how = key_of(client, SM2_LABEL, g.SM2)
    message = b"transfer 100 CNY to account 6222 0000 1234"
    signature = client.expect(g.Sign(SM2_LABEL, message), "Signature")
    check(signature[:1] == b"\x30" and 8 <= len(signature) <= 72, f"not a DER SM2 signature: {signature.hex()}")
    client.expect(g.Verify(SM2_LABEL, message, signature), "Verified")
    try:
        client.call(g.Verify(SM2_LABEL, message.replace(b"100", b"900"), signature))
        raise Failed("a signature over another message verified")
    except g.StatusError as e:
        check(e.name == "SignatureInvalid", f"tampered message answered {e.name}, not SignatureInvalid")
    print(f"sm2: key {SM2_LABEL} {how}; signed and verified ({len(signature)}-byte signature); tampered message refused")


def sm4_round_trips(client: g.Client):
    how = key_of(client, SM4_LABEL, g.SM4)
    plaintext = b"card-chosen IVs: the same plaintext never encrypts alike" * 3
    cbc = g.Sm4(g.CBC_CARD_IV, pkcs7=True)
    a = client.expect(g.Encrypt(SM4_LABEL, cbc, plaintext), "Data")
    b = client.expect(g.Encrypt(SM4_LABEL, cbc, plaintext), "Data")
    padded = 16 * (len(plaintext) // 16 + 1)
    check(len(a) == 16 + padded, f"CBC answer of {len(a)} bytes, expected IV 16 + {padded}")
    check(a[:16] != b[:16], "the card drew the same IV twice")
    check(client.expect(g.Decrypt(SM4_LABEL, cbc, a), "Data") == plaintext, "CBC round trip")
    gcm = g.Sm4GcmCardNonce(aad=b"order 42")
    sealed = client.expect(g.Encrypt(SM4_LABEL, gcm, plaintext), "Data")
    check(len(sealed) == 12 + len(plaintext) + 16, f"GCM answer of {len(sealed)} bytes")
    check(client.expect(g.Decrypt(SM4_LABEL, gcm, sealed), "Data") == plaintext, "GCM round trip")
    try:
        client.call(g.Decrypt(SM4_LABEL, g.Sm4GcmCardNonce(aad=b"order 43"), sealed))
        raise Failed("GCM decrypted under other associated data")
    except g.StatusError as e:
        check(e.name == "DecryptFailed", f"GCM with other AAD answered {e.name}, not DecryptFailed")
    print(f"sm4: key {SM4_LABEL} {how}; CBC (card IV) and GCM (card nonce) round trips; altered AAD refused")


def status(client: g.Client):
    check(client.expect(g.Ping(), "Pong") is None, "Pong carries nothing")
    info = client.expect(g.GetStatus(), "Status")
    check(info.initialized, "the appliance is not initialized")
    check(info.error is None, f"the card is in its error state: {info.error}")
    check(not info.service_stopped, "the service is stopped")
    check(info.audit.chain_break is None, f"audit chain break at {info.audit.chain_break}")
    print(
        f"status: initialized, {info.keys} keys, boot {info.boots}, audit {info.audit.first_seq}.."
        f"{info.audit.last_seq}, {info.sessions} sessions, {info.requests} requests"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", required=True, help="client profile (TOML), e.g. STATE/client.toml")
    ap.add_argument("--delete-keys", action="store_true", help="delete the demo's keys at the end")
    args = ap.parse_args()
    try:
        profile = g.Profile.load(args.profile)
        with g.Client(profile) as client:
            print(f"connected to {profile.address}: {client.sock.version()} {client.sock.cipher()[0]}")
            sm2_sign_verify(client)
            sm4_round_trips(client)
            status(client)
            if args.delete_keys:
                for label in (SM2_LABEL, SM4_LABEL):
                    client.expect(g.DeleteKey(label), "Deleted")
                print("keys deleted")
    except g.StatusError as e:
        print(f"FAILED: the appliance answered {e}", file=sys.stderr)
        return 1
    except (Failed, g.ProtocolError) as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    except (OSError, ssl.SSLError, ValueError) as e:
        print(f"FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
