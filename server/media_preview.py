"""What a moderator is shown of a reported encrypted file before they choose to look at it.

Design note
-----------
Media in moderation queues is greyscale and blurred, with sound muted, until the moderator
reveals each aspect with a separate, audited action (research/moderation.md §32, mastodon#32246;
docs/safety.md "Moderator and member wellbeing"). For posts Hearthside stores no media, so the
flags are instructions to the moderator's app. A file revealed in an E2EE report is different:
the server fetches and decrypts it for the moderator, so the server itself shows the preview.

``shown(data, media_type, display)`` decides, from the file and this moderator's display flags
(``blur``, ``greyscale``, ``muted``: true until revealed):

* An image in one of ``PREVIEW_FORMATS`` (recognised by its bytes, whatever type the sender
  declared) is shown as a PNG preview, at most ``PREVIEW_EDGE`` pixels on its longer side,
  first frame only, turned as its EXIF orientation says: greyscale while ``greyscale``,
  Gaussian-blurred while ``blur``. With both revealed, the original file (a download).
* Anything else cannot be previewed, so it is held back until revealed: audio until
  ``unmute``; video (and a file declared an image that is not one) until ``unblur`` and
  ``colour`` (and ``unmute`` for video); any other file until ``unblur``.

Decoding untrusted images: Pillow reads the header first; an image of more than
``MAX_PREVIEW_PIXELS`` is refused before any pixel is decoded (a decompression bomb is a few
kilobytes that inflate to gigabytes), JPEGs are decoded at reduced scale (``draft``), and a
damaged image is refused with a clear error. Once a moderator reveals such an image (unblur and
colour), it is handed over as it is, never decoded here. The work runs in a thread (``shown_async``) so the
event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from server.wellbeing import REVEALS

PREVIEW_EDGE = 1024
# The formats previewed: what members send from phones and browsers. Pillow tries no other
# decoder (EPS, for one, would run Ghostscript); other files are held back until revealed.
PREVIEW_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP")
# 50 megapixels: a 8,000 x 6,000 camera picture previews; a bomb declaring 20,000 x 20,000 does not.
MAX_PREVIEW_PIXELS = 50_000_000
# The blur's radius as a share of the preview's longer side: faces and text unrecognisable,
# shapes and colours still there to judge whether to look closer.
BLUR_SHARE = 0.03


class PreviewError(Exception):
    """The file cannot be previewed (what is wrong, and that revealing it downloads it)."""


class TooLarge(PreviewError):
    """An image declaring more pixels than are previewed."""


@dataclass(frozen=True, slots=True)
class Shown:
    """What to answer: ``body`` and its type; ``preview`` True for a preview (inline PNG), False
    for the original file (a download); ``applied``: the display flags the preview applies."""

    body: bytes
    preview: bool
    applied: tuple[str, ...] = ()


class HeldBack(Exception):
    """The file cannot be previewed and is held until the moderator reveals ``needed``."""

    def __init__(self, needed: list[str]) -> None:
        super().__init__(", ".join(needed))
        self.needed = needed


#: Display flag -> the reveal action that turns it off (to name what a held-back file needs).
_ACTION = {flag: action for action, flag in REVEALS.items()}


def shown(data: bytes, media_type: str, display: dict[str, bool]) -> Shown:
    """The preview or the original for this moderator's ``display`` flags; ``HeldBack`` when
    the file cannot be previewed and is not yet revealed; ``PreviewError`` for an image that
    is too large or damaged to preview (once revealed, it is handed over undecoded)."""
    blur, grey = display.get("blur", True), display.get("greyscale", True)
    try:
        image = _open_image(data)
    except TooLarge:
        if not blur and not grey:
            return Shown(data, preview=False)
        raise
    if image is None:
        kind = media_type.split("/", 1)[0].strip().lower()
        flags = {"audio": ["muted"], "video": ["blur", "greyscale", "muted"], "image": ["blur", "greyscale"]}
        needed = [_ACTION[f] for f in flags.get(kind, ["blur"]) if display.get(f, True)]
        if needed:
            raise HeldBack(needed)
        return Shown(data, preview=False)
    with image:
        if not blur and not grey:
            return Shown(data, preview=False)
        width, height = image.size
        if width * height > MAX_PREVIEW_PIXELS:
            raise TooLarge(_too_large(f"{width} x {height} pixels"))
        return Shown(_preview(image, blur=blur, grey=grey), preview=True, applied=_applied(blur, grey))


async def shown_async(data: bytes, media_type: str, display: dict[str, bool]) -> Shown:
    """``shown`` in a worker thread (decoding and blurring are CPU work)."""
    return await asyncio.to_thread(shown, data, media_type, display)


def _applied(blur: bool, grey: bool) -> tuple[str, ...]:
    return tuple(name for name, on in (("blur", blur), ("greyscale", grey)) if on)


def _open_image(data: bytes) -> Image.Image | None:
    """The image, header read (no pixels decoded), or None when it is not one of
    ``PREVIEW_FORMATS``; ``TooLarge`` when its header declares more pixels than Pillow accepts."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=PREVIEW_FORMATS)
        except UnidentifiedImageError:
            return None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise TooLarge(_too_large("its declared size")) from None
        except (OSError, ValueError, SyntaxError) as exc:  # Pillow's plugins raise all three
            raise _damaged(type(exc).__name__) from None
    if min(image.size) <= 0:
        image.close()
        raise _damaged("it declares no pixels")
    return image


def _damaged(why: str) -> PreviewError:
    return PreviewError(f"the image is damaged ({why}); reveal it to download it")


def _too_large(what: str) -> str:
    return (
        f"the image is too large to preview ({what}; at most {MAX_PREVIEW_PIXELS:,} pixels); reveal it to download it"
    )


def _preview(image: Image.Image, *, blur: bool, grey: bool) -> bytes:
    try:
        image.draft("RGB", (PREVIEW_EDGE, PREVIEW_EDGE))  # JPEG: decode at a reduced scale
        image.seek(0)  # an animation: its first frame
        frame = ImageOps.exif_transpose(image) or image
        frame.thumbnail((PREVIEW_EDGE, PREVIEW_EDGE))
        frame = frame.convert("L" if grey else "RGB")
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise _damaged(type(exc).__name__) from None
    if blur:
        frame = frame.filter(ImageFilter.GaussianBlur(max(2.0, BLUR_SHARE * max(frame.size))))
    out = io.BytesIO()
    frame.save(out, "PNG")
    return out.getvalue()
