"""Images are opened here, and refused if they would decode to too many pixels.

A small file can declare huge dimensions: a 493 KB PNG of 30,000 × 30,000 pixels takes a
worker to gigabytes once its pixels are decoded (a decompression bomb). Pillow reads only the
header in `Image.open`; `open_image` checks the dimensions there, before any `load()`, and
refuses more than `MAX_PIXELS`. Pillow's own guard is set to the same limit for every decode in
the process (`Image.MAX_IMAGE_PIXELS`: a warning above it, an error above twice it), and its
warning is turned into an error, so no other path decodes such a file either.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image

# Far above any cover or inline image (a 6000 × 4000 photo is 24 MP), far below what would
# exhaust a worker's memory (25 MP of RGBA is 100 MB).
MAX_PIXELS = 25_000_000

Image.MAX_IMAGE_PIXELS = MAX_PIXELS
warnings.simplefilter("error", Image.DecompressionBombWarning)


class TooManyPixels(ValueError):
    """The image's header declares more than `MAX_PIXELS` pixels; nothing was decoded."""


def open_image(data: bytes) -> Image.Image:
    """`data` opened (header read, pixels not decoded yet).

    Raises `TooManyPixels` for an image over `MAX_PIXELS`, and whatever Pillow raises for data
    that is no image (`PIL.UnidentifiedImageError`, `OSError`, `SyntaxError`).
    """
    try:
        image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise TooManyPixels(_too_many()) from None
    width, height = image.size
    if width * height > MAX_PIXELS:  # whatever the warning filters of the moment say
        image.close()
        raise TooManyPixels(_too_many(width, height))
    return image


def _too_many(width: int | None = None, height: int | None = None) -> str:
    size = f"（{width} × {height}）" if width and height else ""
    return f"图片像素过多{size}：最多 {MAX_PIXELS // 1_000_000} 百万像素"
