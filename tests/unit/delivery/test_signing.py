"""Standard Webhooks signing, checked against the independent `standardwebhooks` package."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from rarewatch.delivery.signing import secret_key, sign

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER = "whsec_" + base64.b64encode(b"another secret, for rotation").decode()


def test_a_signature_matches_the_reference_implementation() -> None:
    body = '{"id":"x","title":"稀土"}'.encode()
    ts = 1_780_000_000
    ours = sign([secret_key(SECRET)], "msg_1", ts, body)
    reference = Webhook(SECRET).sign("msg_1", datetime.fromtimestamp(ts, UTC), body.decode())
    assert ours == reference


def test_rotation_gives_one_space_separated_signature_per_secret() -> None:
    body = b"{}"
    both = sign([secret_key(SECRET), secret_key(OTHER)], "m", 1, body)
    assert both.split(" ") == [
        sign([secret_key(SECRET)], "m", 1, body),
        sign([secret_key(OTHER)], "m", 1, body),
    ]


@pytest.mark.parametrize("secret", ["YWJjZA", "whsec_YWJjZA", "whsec_YWJjZA=="])
def test_secrets_decode_with_or_without_prefix_and_padding(secret: str) -> None:
    assert secret_key(secret) == b"abcd"


@pytest.mark.parametrize("secret", ["whsec_", "whsec_not base64!", "whsec_YWJjZ"])
def test_a_malformed_secret_is_a_value_error(secret: str) -> None:
    with pytest.raises(ValueError, match="secret"):
        secret_key(secret)
