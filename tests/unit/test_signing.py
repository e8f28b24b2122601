"""The website/catalogue request signature (channels/signing.py, docs/protocols.md)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from channels.signing import MAX_SKEW_SECONDS, signature, signed_headers, verify

SECRETS = {"sandbox": "sandbox-secret"}
NOW = 1_800_000_000.0
PATH = "/api/catalogue/733099896/2026-00012"
BODY = '{"title":"公示"}'.encode()


def headers(**changes: str) -> dict[str, str]:
    signed = signed_headers("sandbox", "sandbox-secret", "PUT", PATH, BODY, now=NOW)
    return {**signed, **changes}


def test_signature_is_the_documented_hmac() -> None:
    message = f"PUT\n{PATH}\n1800000000\n{hashlib.sha256(BODY).hexdigest()}"
    expected = hmac.new(b"sandbox-secret", message.encode(), hashlib.sha256).hexdigest()

    assert signature("sandbox-secret", "put", PATH, "1800000000", BODY) == expected


def test_signed_headers_carry_app_id_and_unix_seconds() -> None:
    signed = headers()

    assert signed["X-App-Id"] == "sandbox"
    assert signed["X-Timestamp"] == "1800000000"
    assert len(signed["X-Signature"]) == 64


def test_a_correct_request_verifies() -> None:
    assert verify(SECRETS, headers(), "PUT", PATH, BODY, now=NOW) is None


def test_header_names_are_case_insensitive() -> None:
    lowered = {k.lower(): v for k, v in headers().items()}
    assert verify(SECRETS, lowered, "PUT", PATH, BODY, now=NOW) is None


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("DELETE", PATH, BODY),
        ("PUT", "/api/catalogue/733099896/2026-00013", BODY),
        ("PUT", PATH, '{"title":"公告"}'.encode()),
    ],
    ids=["method", "path", "body"],
)
def test_any_change_to_the_signed_request_is_refused(method: str, path: str, body: bytes) -> None:
    assert verify(SECRETS, headers(), method, path, body, now=NOW) == "X-Signature does not match"


def test_wrong_secret_is_refused_without_revealing_it() -> None:
    wrong = signed_headers("sandbox", "guess", "PUT", PATH, BODY, now=NOW)

    reason = verify(SECRETS, wrong, "PUT", PATH, BODY, now=NOW)

    assert reason == "X-Signature does not match"
    assert "sandbox-secret" not in reason


def test_unknown_or_missing_app_id_is_refused() -> None:
    assert verify(SECRETS, headers(**{"X-App-Id": "other"}), "PUT", PATH, BODY, now=NOW)
    no_app = {k: v for k, v in headers().items() if k != "X-App-Id"}
    assert "X-App-Id" in (verify(SECRETS, no_app, "PUT", PATH, BODY, now=NOW) or "")


@pytest.mark.parametrize("skew", [MAX_SKEW_SECONDS, -MAX_SKEW_SECONDS])
def test_timestamp_within_the_limit_is_accepted(skew: int) -> None:
    assert verify(SECRETS, headers(), "PUT", PATH, BODY, now=NOW + skew) is None


@pytest.mark.parametrize("skew", [MAX_SKEW_SECONDS + 1, -(MAX_SKEW_SECONDS + 1)])
def test_stale_or_future_timestamp_is_refused(skew: int) -> None:
    reason = verify(SECRETS, headers(), "PUT", PATH, BODY, now=NOW + skew)
    assert reason and "X-Timestamp" in reason


def test_timestamp_that_is_not_unix_seconds_is_refused() -> None:
    reason = verify(SECRETS, headers(**{"X-Timestamp": "yesterday"}), "PUT", PATH, BODY, now=NOW)
    assert reason == "X-Timestamp is not Unix seconds"
