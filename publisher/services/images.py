"""Uploaded images, stored without their metadata.

A photo from a phone carries where it was taken (EXIF GPS), when, on which device, often the
owner's name (EXIF, XMP, IPTC, comments, PNG text chunks). None of it may reach a channel, so
an upload is re-encoded from its pixels before it is stored: what is kept is what draws the
image (colour profile, transparency, animation timing), nothing else. A photo's EXIF
orientation is applied to the pixels first, so it still shows the right way up.

JPEGs are re-encoded with their own quantisation tables and chroma subsampling, which keeps
the loss of a second encoding to rounding; WebP at quality 90; PNG and GIF are lossless.
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image, ImageOps, JpegImagePlugin

from channels.pixels import MAX_PIXELS, TooManyPixels, open_image
from publisher.errors import FieldProblem, InvalidInput

# What draws the image; every other key of Pillow's `info` is metadata.
KEEP_INFO = frozenset({"icc_profile", "transparency", "duration", "loop", "background"})


def without_metadata(data: bytes) -> bytes:
    """`data` (a JPEG, PNG, GIF or WebP image) re-encoded without metadata. Raises
    `InvalidInput` for an image with too many pixels (`channels.pixels`, refused from its
    header), or one whose pixels do not decode (a truncated file)."""
    try:
        opened = open_image(data)
    except TooManyPixels as exc:
        too_many = FieldProblem("file", "max_pixels", str(exc), values={"limit": MAX_PIXELS})
        raise InvalidInput([too_many]) from None
    with opened as image:
        kind = image.format or "PNG"
        out = io.BytesIO()
        try:
            if getattr(image, "n_frames", 1) > 1:
                _save_animation(image, out, kind)
            else:
                _save_still(image, out, kind)
        except (OSError, SyntaxError, ValueError) as exc:
            raise InvalidInput(
                [
                    FieldProblem(
                        "file",
                        "image",
                        f"the image does not decode: {exc}",
                        values={"case": "decode"},
                    )
                ]
            ) from exc
        return out.getvalue()


def _save_still(image: Image.Image, out: io.BytesIO, kind: str) -> None:
    options: dict[str, Any] = {}
    if kind == "JPEG":
        assert isinstance(image, JpegImagePlugin.JpegImageFile)
        options["qtables"] = image.quantization
        sampling = JpegImagePlugin.get_sampling(image)
        if sampling != -1:
            options["subsampling"] = sampling
        if image.info.get("progressive"):
            options["progressive"] = True
    elif kind == "WEBP":
        options["quality"] = 90
    clean = ImageOps.exif_transpose(image)  # a new image; the original's info stays behind
    clean.info = {key: value for key, value in image.info.items() if key in KEEP_INFO}
    options.update((str(key), value) for key, value in clean.info.items())
    clean.save(out, format=kind, **options)


def _save_animation(image: Image.Image, out: io.BytesIO, kind: str) -> None:
    """Every frame, with its timing; the frames' own metadata (comments, XMP) is not passed
    on, and an explicit empty comment keeps the GIF writer from copying the source's."""
    frames = []
    durations = []
    for index in range(getattr(image, "n_frames", 1)):
        image.seek(index)
        durations.append(image.info.get("duration", 100))
        frame = image.copy()
        frame.info = {}
        frames.append(frame)
    options: dict[str, Any] = {"duration": durations, "loop": image.info.get("loop", 0)}
    if kind == "GIF":
        options["comment"] = b""
    elif kind == "WEBP":
        options["quality"] = 90
    first = frames[0]
    first.save(out, format=kind, save_all=True, append_images=frames[1:], **options)
