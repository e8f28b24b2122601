"""Pixel bombs (issue 12): a small file that declares huge dimensions is refused from its
header, before its pixels are decoded, wherever we open an image. The upload's refusal (422)
is tested with the media API in test_api.py."""

from __future__ import annotations

import resource
import time

import pytest

from channels import wechat_render as render
from channels.pixels import MAX_PIXELS, TooManyPixels, open_image
from tests.outbound import png, png_bomb


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_a_small_png_of_huge_dimensions_is_refused_without_decoding_it() -> None:
    bomb = png_bomb(20_000, 20_000)  # 400 MB once decoded
    assert len(bomb) < 600_000
    before, started = peak_rss_mb(), time.monotonic()

    for make_image in (render.cover_jpeg, render.inline_image, open_image):
        with pytest.raises(TooManyPixels, match="图片像素过多"):
            make_image(bomb)

    assert peak_rss_mb() - before < 200, "the pixels were decoded"
    assert time.monotonic() - started < 30


def test_just_over_the_limit_is_refused_and_under_it_decodes() -> None:
    with pytest.raises(TooManyPixels, match="最多 25 百万像素"):
        open_image(png_bomb(5001, 5000))
    assert MAX_PIXELS >= 5000 * 5000
    assert open_image(png_bomb(5000, 5000)).size == (5000, 5000)
    assert render.cover_jpeg(png(1200, 600))[:3] == b"\xff\xd8\xff"


def test_an_unreadable_image_says_so_plainly() -> None:
    with pytest.raises(ValueError, match="不是可读的图片") as caught:
        render.cover_jpeg(b"GIF89a not really")
    assert not isinstance(caught.value, TooManyPixels)
