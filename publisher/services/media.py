"""Storing an uploaded image (a cover or an inline picture): checked, stripped of its
metadata (`services.images`), stored once by its SHA-256 and served at `/media/<sha256>`.

`POST /api/v1/media` and the console's cover upload both store through `store_image`.
Takes the caller's session; never commits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from PIL import UnidentifiedImageError
from sqlalchemy.orm import Session

from channels.pixels import MAX_PIXELS, TooManyPixels, open_image
from publisher.audit import audit
from publisher.errors import FieldProblem, InvalidInput
from publisher.models import Media
from publisher.services.images import without_metadata

MAX_MEDIA_BYTES = 5_000_000
IMAGE_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}


@dataclass(frozen=True)
class StoredMedia:
    url: str  # what an item's `cover_image` takes
    sha256: str
    content_type: str


def store_image(session: Session, data: bytes, *, actor: str, field: str = "file") -> StoredMedia:
    """Store `data` (at most `MAX_MEDIA_BYTES`) re-encoded without its metadata, once per
    content, audited. Raises `InvalidInput` naming `field` for anything but a JPEG, PNG, GIF
    or WebP image of an acceptable size."""
    if len(data) > MAX_MEDIA_BYTES:
        raise InvalidInput(
            [
                FieldProblem(
                    field,
                    "max_bytes",
                    f"images must be at most {MAX_MEDIA_BYTES} bytes",
                    values={"limit": MAX_MEDIA_BYTES},
                )
            ]
        )
    content_type = image_type(data, field)
    data = without_metadata(data)  # no GPS, camera or owner reaches a channel (issue 11)
    sha = hashlib.sha256(data).hexdigest()
    stored = session.get(Media, sha) is None
    if stored:
        session.add(Media(sha256=sha, content_type=content_type, data=data))
    audit(
        session,
        actor,
        "media.upload",
        f"media:{sha[:16]}",
        sha256=sha,
        content_type=content_type,
        size=len(data),
        new=stored,
    )
    return StoredMedia(url=f"/media/{sha}", sha256=sha, content_type=content_type)


def image_type(data: bytes, field: str = "file") -> str:
    """The MIME type of an image we accept. Raises `InvalidInput` for anything else, and for
    an image with too many pixels (refused from its header, never decoded)."""
    try:
        with open_image(data) as image:
            image.verify()
            kind = image.format or ""
    except TooManyPixels as exc:
        too_many = FieldProblem(field, "max_pixels", str(exc), values={"limit": MAX_PIXELS})
        raise InvalidInput([too_many]) from None
    except (UnidentifiedImageError, OSError, SyntaxError):
        kind = ""
    if kind not in IMAGE_TYPES:
        raise InvalidInput([FieldProblem(field, "image", "upload a JPEG, PNG, GIF or WebP image")])
    return IMAGE_TYPES[kind]
