"""CAEP signing cost of the worst batch: a mass expiry of one full batch, several audiences.

    .venv/bin/python -m bench.caep_signing [--records 5000] [--audiences 3]

Every revocation of the batch becomes one signed Security Event Token per audience. The
enforcer signs outside its transactions (sessionwarden/caep/transmitter.py), so this time is what
the transmitter needs to catch up after such a batch; it is compared with the enforcer's
default ``transaction.timeout.ms`` to show why signing inside a transaction is not an option.
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sessionwarden.caep.events import CaepConfig, caep_events_for
from sessionwarden.config.settings import Settings


def _pem(key: Any) -> bytes:
    return bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def keys() -> dict[str, bytes]:
    return {
        "RS256 (RSA 2048)": _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "RS256 (RSA 3072)": _pem(rsa.generate_private_key(public_exponent=65537, key_size=3072)),
        "ES256 (P-256)": _pem(ec.generate_private_key(ec.SECP256R1())),
    }


def revocations(count: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC).isoformat()
    return [
        {
            "type": "revocation",
            "schema_version": 1,
            "revocation_id": str(uuid.uuid4()),
            "session_id": f"mass-{i}",
            "user_id": f"user-{i}",
            "tenant": "acme",
            "reason": "idle_timeout",
            "effective_at": now,
            "emitted_at": now,
            "roles": ["viewer"],
            "permissions": [],
            "policy_version": "bench",
        }
        for i in range(count)
    ]


def measure(records: int, audiences: int) -> list[dict[str, Any]]:
    batch = revocations(records)
    targets = tuple(f"https://rp{i}.example" for i in range(audiences))
    results = []
    for name, pem in {"unsigned (alg none)": None, **keys()}.items():
        config = CaepConfig("https://sessionwarden.example", targets, pem, "k1")
        started = time.perf_counter()
        tokens = sum(len(caep_events_for(record, config)) for record in batch)
        took = time.perf_counter() - started
        results.append({"signing": name, "tokens": tokens, "seconds": round(took, 3)})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=Settings().enforcer.batch_size)
    parser.add_argument("--audiences", type=int, default=3)
    args = parser.parse_args()
    timeout_s = Settings().enforcer.transaction_timeout_ms / 1000
    print(f"one batch: {args.records} revocations x {args.audiences} audiences")
    for row in measure(args.records, args.audiences):
        share = row["seconds"] / timeout_s
        print(
            f"  {row['signing']:20} {row['tokens']:6} SETs in {row['seconds']:7.3f} s"
            f"  ({share:.0%} of transaction.timeout.ms {timeout_s:g} s)"
        )


if __name__ == "__main__":
    main()
