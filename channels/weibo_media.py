"""The cover picture of a Weibo post, in a form Weibo takes.

`statuses/share` takes a `pic` "仅支持JPEG、GIF、PNG图片，上传图片大小限制为<5M"
(https://open.weibo.com/wiki/2/statuses/share); anything else is refused (20005 unsupported
type, 20006 too large: https://open.weibo.com/wiki/Error_code). An item's cover may be a
WebP, a BMP or a large photo, so it is re-encoded here rather than failing the post: a JPEG,
PNG or GIF under the limit passes unchanged; anything else becomes a JPEG under it (lower
quality first, then smaller). Images are opened through `channels.pixels.open_image`, which
refuses decompression bombs before any pixel is decoded.
"""

from __future__ import annotations

import io

from PIL import Image

from channels.pixels import TooManyPixels, open_image

MAX_BYTES = 5 * 1024 * 1024 - 1  # "<5M"
ACCEPTED = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif"}
UNREADABLE = "封面图片不是可读的图片"


def weibo_picture(data: bytes, name: str) -> tuple[str, bytes, str]:
    """`(filename, bytes, mime)` of a picture Weibo accepts made from `data`.

    Raises `ValueError` (plain words for the editor) if `data` is no image, or declares too
    many pixels (`channels.pixels.TooManyPixels`, a `ValueError`).
    """
    image = _opened(data)
    if image.format in ACCEPTED and len(data) <= MAX_BYTES:
        return name, data, ACCEPTED[image.format]
    try:
        image.load()
    except Exception:  # a truncated or corrupt file; Pillow raises several types
        raise ValueError(UNREADABLE) from None
    stem = name.rsplit(".", 1)[0] or "cover"
    return f"{stem}.jpg", _jpeg_under_limit(image.convert("RGB")), "image/jpeg"


def _opened(data: bytes) -> Image.Image:
    try:
        return open_image(data)
    except TooManyPixels:
        raise
    except Exception:  # Pillow raises several types for data that is no image
        raise ValueError(UNREADABLE) from None


def _jpeg_under_limit(image: Image.Image) -> bytes:
    """Lower quality, then size, until the JPEG is under `MAX_BYTES`."""
    while True:
        for quality in (90, 80, 65, 50):
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=quality, optimize=True)
            if buffer.tell() <= MAX_BYTES:
                return buffer.getvalue()
        image = image.resize((max(1, image.width * 3 // 4), max(1, image.height * 3 // 4)))
