"""Shape a publication for a WeChat article: the HTML subset, the limits, the cover image.

WeChat's editor keeps a small set of tags and styles and strips the rest (scripts, forms,
iframes, external links); images must live on WeChat's own CDN, so inline `<img>` sources are
collected here and replaced once `media/uploadimg` has given their new URLs. Both go through
the same HTML parser as the cleaning (nh3's, html5ever), never a regex: what is fetched is
exactly the `src` a browser would read, entities decoded, however the tag is spelt. The cover is a
"thumb" material: a JPEG under 64 KB. The digest is the editor's, else the summary (or the
body's text) cut at the last sentence end within 128 characters (`digest_of`): the adapter
sends and the preview shows the same. Every function here is pure (bytes and strings in and
out).
"""

from __future__ import annotations

import hashlib
import html as html_entities
import io
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import nh3
from PIL import Image, ImageDraw, ImageFont

from channels.pixels import TooManyPixels, open_image

TITLE_MAX = 32
AUTHOR_MAX = 16
DIGEST_MAX = 128
CONTENT_MAX_CHARS = 20_000  # strictly fewer
CONTENT_MAX_BYTES = 1_000_000  # strictly fewer
THUMB_MAX_BYTES = 64 * 1024  # strictly fewer: WeChat answers 40009 at the limit
COVER_SIZE = (900, 383)  # WeChat's 2.35:1 cover

_TAGS = {
    *("p", "br", "span", "strong", "b", "em", "i", "u", "s", "sub", "sup", "hr", "pre", "code"),
    *("h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "section", "figure", "figcaption"),
    *("ul", "ol", "li", "table", "thead", "tbody", "tr", "td", "th", "img"),
}
_ATTRIBUTES = {
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
}

# One calm colour per disclosure domain (docs/protocols.md §3); unknown domains: a hash colour.
DOMAIN_COLOURS: dict[str, tuple[int, int, int]] = {
    "poverty": (178, 34, 34),
    "welfare": (0, 110, 160),
    "education": (30, 120, 70),
    "health": (0, 140, 130),
    "environment": (70, 130, 40),
    "disaster": (200, 100, 0),
    "culture": (110, 60, 150),
}
_CJK_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/System/Library/Fonts/PingFang.ttc",
    "C:/Windows/Fonts/msyh.ttc",
)


def wechat_html(html: str) -> str:
    """The article body reduced to the tags WeChat keeps; links become their text."""
    return _clean(html, lambda src: src)


def inline_images(html: str) -> list[str]:
    """The distinct `<img src>` URLs of `html`, in order of appearance."""
    found: list[str] = []

    def collect(src: str) -> str:
        found.append(src)
        return src

    _clean(html, collect)
    return list(dict.fromkeys(found))


def replace_images(html: str, new_urls: Mapping[str, str]) -> str:
    """`html` (as `wechat_html` left it) with each `<img src>` found in `new_urls` pointed at
    its new URL."""
    return _clean(html, lambda src: new_urls.get(src, src))


def _clean(html: str, image_source: Callable[[str], str]) -> str:
    """`html` with WeChat's tags only, each `<img src>` value passed through `image_source`."""

    def attribute(tag: str, name: str, value: str) -> str:
        return image_source(value) if (tag, name) == ("img", "src") else value

    return nh3.clean(
        html,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        link_rel=None,
        strip_comments=True,
        attribute_filter=attribute,
    )


# Where an automatic digest may end: a full-width sentence end, or an ASCII one followed by a
# space or the end of the text (the "?" of a link in the text ends nothing).
_SENTENCE_END = re.compile(r"[。！？；]|[!?;](?=\s|$)")
# Block ends read as a space, so that two paragraphs' text does not run together.
_BLOCK_END = re.compile(
    r"<(?:br|hr|/p|/h[1-6]|/li|/td|/th|/tr|/blockquote|/section|/figcaption|/pre)\b[^>]*>",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Digest:
    """The digest of a WeChat article and where it came from: `source` is `given` (the
    editor's own), `summary` or `body` (cut automatically); `cut` says text was left out."""

    text: str
    source: str
    cut: bool = False

    @property
    def automatic(self) -> bool:
        return self.source != "given"


def digest_of(given: str | None, summary: str, body_html: str, limit: int = DIGEST_MAX) -> Digest:
    """The digest the article is given: `given` as it is (preflight bounds it), else the
    summary's text, else the body's, cut by `sentence_cut`. Never refuses: an item with
    neither summary nor body text gets an empty digest."""
    if given and given.strip():
        return Digest(given, "given")
    for source, text in (("summary", summary), ("body", body_text(body_html))):
        text = " ".join(text.split())
        if text:
            short = sentence_cut(text, limit)
            return Digest(short, source, cut=short != text)
    return Digest("", "summary")


def sentence_cut(text: str, limit: int) -> str:
    """`text` whole if it has at most `limit` characters; else up to the last sentence end
    (。！？； or !?; before a space) within `limit`, the mark kept; with no sentence end
    there, the first `limit` − 1 characters and "…"."""
    if len(text) <= limit:
        return text
    end = 0
    for found in _SENTENCE_END.finditer(text):
        if found.end() > limit:
            break
        end = found.end()
    if end:
        return text[:end].rstrip()
    return text[: limit - 1].rstrip() + "…"


def body_text(body_html: str) -> str:
    """The text of a body as a reader sees it: tags (and scripts) gone, entities read."""
    text = nh3.clean(_BLOCK_END.sub(" ", body_html), tags=set(), attributes={})
    return html_entities.unescape(text)


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, marking the cut with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cover_jpeg(data: bytes) -> bytes:
    """Any image as a 2.35:1 JPEG under 64 KB. Raises `ValueError` (its text in plain words
    for the editor) if `data` is no image or has too many pixels (`channels.pixels`)."""
    opened = _decoded(_opened(data))
    image = _crop_to_ratio(opened.convert("RGB"), COVER_SIZE[0] / COVER_SIZE[1])
    image.thumbnail(COVER_SIZE)
    return _jpeg_under_limit(image)


UNREADABLE = "不是可读的图片（JPEG、PNG、GIF 或 WebP）"
INLINE_MAX_BYTES = 1_000_000  # `media/uploadimg` takes JPEG or PNG under 1 MB


def inline_image(data: bytes) -> tuple[bytes, str, str]:
    """An inline image as `(bytes, filename, mime)` that `media/uploadimg` accepts.

    JPEG and PNG under 1 MB pass unchanged (their header read, their pixels counted);
    anything else is re-encoded as a JPEG no wider than 1080 px. Raises `ValueError` as
    `cover_jpeg` does.
    """
    opened = _opened(data)
    if opened.format == "JPEG" and len(data) < INLINE_MAX_BYTES:
        return data, "image.jpg", "image/jpeg"
    if opened.format == "PNG" and len(data) < INLINE_MAX_BYTES:
        return data, "image.png", "image/png"
    image = _decoded(opened).convert("RGB")
    image.thumbnail((1080, 1080 * 4))
    quality = 85
    while True:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality, optimize=True)
        if buffer.tell() < INLINE_MAX_BYTES or quality <= 25:
            return buffer.getvalue(), "image.jpg", "image/jpeg"
        quality -= 15


def _opened(data: bytes) -> Image.Image:
    """`data`'s header read; refused there when it declares too many pixels."""
    try:
        return open_image(data)
    except TooManyPixels:
        raise
    except Exception:  # Pillow raises several types for undecodable input
        raise ValueError(UNREADABLE) from None


def _decoded(image: Image.Image) -> Image.Image:
    try:
        image.load()
    except Exception:  # a truncated or corrupt file; Pillow raises several types
        raise ValueError(UNREADABLE) from None
    return image


def default_cover(domain_code: str, domain_name: str) -> bytes:
    """A plain coloured card naming the domain (text only if a CJK font is installed)."""
    colour = DOMAIN_COLOURS.get(domain_code) or _hash_colour(domain_code)
    image = Image.new("RGB", COVER_SIZE, colour)
    draw = ImageDraw.Draw(image)
    width, height = COVER_SIZE
    draw.rectangle((0, height - 24, width, height), fill=_shade(colour, 0.75))
    font = _cjk_font(72)
    if font is not None and domain_name:
        try:
            box = draw.textbbox((0, 0), domain_name, font=font)
            x = (width - (box[2] - box[0])) / 2
            y = (height - 24 - (box[3] - box[1])) / 2 - box[1]
            draw.text((x, y), domain_name, font=font, fill=(255, 255, 255))
        except Exception:  # a broken font must never stop a publication; the card stays plain
            pass
    return _jpeg_under_limit(image)


def _crop_to_ratio(image: Image.Image, ratio: float) -> Image.Image:
    width, height = image.size
    if width / height > ratio:
        new_width = int(height * ratio)
        left = (width - new_width) // 2
        return image.crop((left, 0, left + new_width, height))
    new_height = int(width / ratio)
    top = (height - new_height) // 2
    return image.crop((0, top, width, top + new_height))


def _jpeg_under_limit(image: Image.Image) -> bytes:
    """Lower quality, then size, until the JPEG is under `THUMB_MAX_BYTES`."""
    while True:
        for quality in (85, 70, 55, 40, 25):
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=quality, optimize=True)
            if buffer.tell() < THUMB_MAX_BYTES:
                return buffer.getvalue()
        image = image.resize((max(1, image.width * 3 // 4), max(1, image.height * 3 // 4)))


def _cjk_font(size: int) -> ImageFont.FreeTypeFont | None:
    for candidate in _CJK_FONTS:
        if Path(candidate).exists():
            try:
                return ImageFont.truetype(candidate, size)
            except OSError:
                continue
    return None


def _hash_colour(code: str) -> tuple[int, int, int]:
    digest = hashlib.sha256(code.encode()).digest()
    return (40 + digest[0] % 140, 40 + digest[1] % 140, 40 + digest[2] % 140)


def _shade(colour: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    r, g, b = colour
    return (int(r * factor), int(g * factor), int(b * factor))
