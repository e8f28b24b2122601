"""Secrets at rest: channel access tokens are sealed (AES-256-GCM) before the store keeps them.

A Redis dump, a copy of the `shared_values` table or a backup of either must not hand out the
tokens that publish in the organisation's name. A secret is stored as

    sealed:v1:<key id>:<urlsafe base64 of nonce ‖ ciphertext ‖ tag>

under `PUBLISHER_SECRET_KEY`, with a random 96-bit nonce per value and, as associated data,
the header and the name of the store key: a value copied to another key (one channel's token
to another's) or given another header does not open. The key id (8 hex digits derived from
the key, revealing nothing of it) says which key sealed a value, so that the keys listed in
`PUBLISHER_SECRET_KEYS_OLD` still open what they sealed during a rotation, and
`publisher secrets reseal` finds what is not yet under the current key.

A value that does not open (sealed with a key that is not configured, altered, or written in
clear before sealing existed) reads as absent, with a warning naming the store key, never the
value: the channel then fetches a new token (WeChat) or asks for re-authorisation (Weibo).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import logging
import os
import secrets
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from publisher.errors import Conflict
from publisher.i18n import t

log = logging.getLogger(__name__)

KEY_BYTES = 32
NONCE_BYTES = 12
SEALED = "sealed:v1:"
NEW_KEY_COMMAND = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


class Unopenable(Exception):
    """A stored secret that does not open; the message says why, never what it holds."""


class SecretKeyMissing(Conflict):
    """A secret was to be stored, and no key to seal it with is configured (HTTP 409)."""

    def __init__(self) -> None:
        super().__init__(
            "PUBLISHER_SECRET_KEY is not set, and channel tokens are only ever stored sealed "
            f"with it: set it for every process to 32 random bytes, urlsafe base64 "
            f"({NEW_KEY_COMMAND}), restart, then give the token again",
            zh=t("refusal.secret_key_missing"),
        )


def decode_key(text: str) -> bytes:
    """The 32 bytes of a key written in urlsafe base64, `=` padding optional.

    Raises `ValueError` saying what is wrong, never repeating the text.
    """
    text = text.strip()
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"is not urlsafe base64; make one with {NEW_KEY_COMMAND}") from None
    if len(key) != KEY_BYTES:
        raise ValueError(
            f"must be {KEY_BYTES} bytes in urlsafe base64 (got {len(key)} bytes); "
            f"make one with {NEW_KEY_COMMAND}"
        )
    return key


def key_id(key: bytes) -> str:
    """Eight hex digits naming `key` in sealed values: a keyed hash, so it tells nothing of it."""
    return hashlib.blake2b(b"publisher sealed-value key id", key=key, digest_size=4).hexdigest()


def is_sealed(stored: str) -> bool:
    return stored.startswith(SEALED)


class Sealer:
    """Seals with the current key; opens what the current key or an old one sealed."""

    def __init__(self, current: bytes | None, old: Sequence[bytes] = ()) -> None:
        self._current = None if current is None else key_id(current)
        keys = [*old, *([] if current is None else [current])]
        self._keys = {key_id(key): AESGCM(key) for key in keys}

    @property
    def can_seal(self) -> bool:
        return self._current is not None

    def seal(self, name: str, value: str) -> str:
        """`value` sealed for the store key `name`. Raises `SecretKeyMissing` without a key."""
        if self._current is None:
            raise SecretKeyMissing()
        header = f"{SEALED}{self._current}:"
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self._current].encrypt(nonce, value.encode(), _bound(header, name))
        return header + base64.urlsafe_b64encode(nonce + sealed).decode()

    def unseal(self, name: str, stored: str) -> str | None:
        """The value sealed in `stored` for `name`; None (and a warning) if it does not open."""
        try:
            return self._opened(name, stored)
        except Unopenable as exc:
            log.warning("the secret under %r cannot be opened (%s); treated as absent", name, exc)
            return None

    def _opened(self, name: str, stored: str) -> str:
        if not is_sealed(stored):
            raise Unopenable("it is in clear, from before sealing: run `publisher secrets reseal`")
        kid, _, body = stored.removeprefix(SEALED).partition(":")
        aead = self._keys.get(kid)
        if aead is None:
            raise Unopenable(
                f"its key {kid} is neither PUBLISHER_SECRET_KEY nor in PUBLISHER_SECRET_KEYS_OLD"
            )
        try:
            raw = base64.urlsafe_b64decode(body)
            bound = _bound(f"{SEALED}{kid}:", name)
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], bound).decode()
        except (InvalidTag, ValueError, binascii.Error):
            raise Unopenable("it was altered, or sealed for another key name") from None

    def is_current(self, stored: str) -> bool:
        """Whether `stored` is sealed with the current key (nothing to re-seal)."""
        return self._current is not None and stored.startswith(f"{SEALED}{self._current}:")

    def resealed(self, name: str, stored: str) -> str | None:
        """`stored` sealed again with the current key, or None when there is nothing to do
        (already under it, or it does not open). A value in clear, written before sealing
        existed, is sealed: this is how a store written by an older version is taken over."""
        if self.is_current(stored):
            return None
        value = self.unseal(name, stored) if is_sealed(stored) else stored
        return None if value is None else self.seal(name, value)


def _bound(header: str, name: str) -> bytes:
    return f"{header}{name}".encode()


def local_key(path: Path) -> bytes:
    """The key kept in `path`, made (32 random bytes, mode 0600) when there is none yet.

    Processes started together may all find no file: each writes a key aside and links it into
    place, so the file appears whole or not at all, the first link wins and all read its key.
    Raises `ValueError` naming the file when it holds no valid key.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, aside = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(KEY_BYTES) + "\n")
            with contextlib.suppress(FileExistsError):  # another process linked first
                os.link(aside, path)
        finally:
            os.unlink(aside)
    try:
        return decode_key(path.read_text())
    except ValueError as exc:
        raise ValueError(f"the secret key file {path} {exc}") from None
