"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

The signed content is `"{webhook-id}.{webhook-timestamp}.{body}"`; each signature is `v1,` followed by
the base64 HMAC-SHA256 of it, keyed with the secret's bytes (the base64 after `whsec_`). During a key
rotation several secrets are configured and `webhook-signature` carries one signature per secret,
separated by spaces, so receivers holding either the old or the new secret can verify.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_...` secret. Raises ValueError for a malformed or empty secret."""
    encoded = secret.removeprefix(SECRET_PREFIX).rstrip("=")
    try:
        # Like the reference libraries, accept padded and unpadded base64 alike.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except ValueError as exc:  # binascii.Error, or characters outside ASCII
        raise ValueError(f"webhook secret is not valid base64 after {SECRET_PREFIX!r}") from exc
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def sign(keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value: one `v1,<base64>` per key, space-separated."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join(_sign_one(key, content) for key in keys)


def _sign_one(key: bytes, content: bytes) -> str:
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")
