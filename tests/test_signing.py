"""core.signing's serializer: itsdangerous' token format, byte for byte, without its per-token costs."""

from __future__ import annotations

from unittest import mock

import pytest
from itsdangerous import URLSafeTimedSerializer

from core import signing

KEY = "k" * 64
SALT = "supporters/unsubscribe"


@pytest.mark.parametrize("payload", [{"s": 7}, {"s": 123456789, "g": 42}, {"s": 1, "note": "x" * 300},
                                     {"s": 2, "t": "zoë ✓"}])
def test_same_bytes_as_itsdangerous_and_readable_both_ways(payload):
    ours = signing._LinkSerializer(KEY, salt=SALT)
    library = URLSafeTimedSerializer(KEY, salt=SALT)
    with mock.patch("time.time", return_value=1_800_000_000):
        token = ours.dumps(payload)
        assert token == library.dumps(payload)  # short payloads too: zlib never won for them
    assert library.loads(token) == payload
    assert ours.loads(library.dumps(payload)) == payload


def test_long_compressible_payload_still_compressed():
    payload = {"s": 1, "note": "a" * 400}
    token = signing._LinkSerializer(KEY, salt=SALT).dumps(payload)
    assert token.startswith(".")  # the mixin's compressed form
    assert URLSafeTimedSerializer(KEY, salt=SALT).loads(token) == payload


def test_purpose_and_key_still_bind_the_token():
    token = signing._LinkSerializer(KEY, salt=SALT).dumps({"s": 1})
    for other in (signing._LinkSerializer(KEY, salt="supporters/confirm"), signing._LinkSerializer("x" * 64, salt=SALT)):
        with pytest.raises(Exception, match="Signature"):
            other.loads(token)
    # Key rotation: an old key still verifies while the new one signs.
    rotated = signing._LinkSerializer(["x" * 64, KEY], salt=SALT)
    assert rotated.loads(token) == {"s": 1}
