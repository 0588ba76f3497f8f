"""`entitlement-sidecar demo` (interim): one signed RegisterUsage round trip on the emulator.

Starts the embedded Metering emulator, calls RegisterUsage with a plain boto3 client pointed at it
through the standard endpoint variable, verifies the token's PS256 signature with the emulator's
published public key and checks its claims, narrating each step. The full sidecar walk-through
replaces this once the sidecar lands.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
from unittest import mock

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.emulator.signing import PSS

PRODUCT = "prod-paid"


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def main(argv: list[str]) -> int:
    """Run the walk-through; 0 when the token verified and its claims matched."""
    import boto3

    say = print
    with Emulator() as emu:
        say(f"1. Metering emulator listening on {emu.url} (public keys in {emu.public_key_dir})")
        nonce = secrets.token_hex(16)
        with mock.patch.dict(os.environ, emu.env(access_key_id="AKIDDEMOPOD")):
            client = boto3.client("meteringmarketplace", region_name=os.environ["AWS_REGION"])
            reply = client.register_usage(ProductCode=PRODUCT, PublicKeyVersion=1, Nonce=nonce)
        token = reply["Signature"]
        call = f"RegisterUsage({PRODUCT}, key version 1, nonce {nonce[:8]}...)"
        say(f"2. {call} -> a {len(token)}-byte token")
        header_b64, payload_b64, signature_b64 = token.split(".")
        header = json.loads(_unb64(header_b64))
        if header != {"alg": "PS256", "typ": "JWT"}:
            say(f"   unexpected header {header}: refusing")
            return 1
        key = serialization.load_pem_public_key((emu.public_key_dir / "1.pem").read_bytes())
        assert isinstance(key, rsa.RSAPublicKey)
        signing_input = f"{header_b64}.{payload_b64}".encode()
        try:
            key.verify(_unb64(signature_b64), signing_input, PSS, hashes.SHA256())
        except InvalidSignature:
            say("   the signature does not verify with the published key: not entitled")
            return 1
        say("3. PS256 signature verified with key version 1 (RSASSA-PSS, SHA-256, salt 32)")
        claims = json.loads(_unb64(payload_b64))
        expected = {"productCode": PRODUCT, "publicKeyVersion": 1, "nonce": nonce}
        wrong = {k: claims.get(k) for k, v in expected.items() if claims.get(k) != v}
        if wrong:
            say(f"   claims do not match the request: {wrong}")
            return 1
        say(f"4. claims match the request: {json.dumps(claims, sort_keys=True)}")
        say("5. entitled: this pod may start")
    sys.stdout.flush()
    return 0
