"""Signing keys, their JWKS and signed JWTs for the gate's tests."""

from __future__ import annotations

import base64
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64_int(value: int, size: int | None = None) -> str:
    return b64(value.to_bytes(size or (value.bit_length() + 7) // 8, "big"))


def jwks(*, rsa_kid: str = "r1", ec_kid: str = "e1") -> bytes:
    rn = RSA_KEY.public_key().public_numbers()
    en = EC_KEY.public_key().public_numbers()
    return orjson.dumps(
        {
            "keys": [
                {"kty": "RSA", "kid": rsa_kid, "use": "sig", "n": b64_int(rn.n),
                 "e": b64_int(rn.e)},
                {"kty": "EC", "kid": ec_kid, "crv": "P-256", "x": b64_int(en.x, 32),
                 "y": b64_int(en.y, 32)},
            ]
        }
    )  # fmt: skip


def sign(claims: dict[str, Any], alg: str = "RS256", kid: str | None = None, **header: Any) -> str:
    head = {"alg": alg, "typ": "JWT", **header}
    if kid is not None or alg in ("RS256", "ES256"):
        head["kid"] = kid or ("r1" if alg == "RS256" else "e1")
    signed = f"{b64(orjson.dumps(head))}.{b64(orjson.dumps(claims))}".encode()
    if alg == "ES256":
        r, s = decode_dss_signature(EC_KEY.sign(signed, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        signature = RSA_KEY.sign(signed, padding.PKCS1v15(), hashes.SHA256())
    return f"{signed.decode()}.{b64(signature)}"
