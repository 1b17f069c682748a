"""What a moderator is shown of a reported encrypted file (server/media_preview.py): images as
greyscale, blurred previews until each is revealed, other files held back until revealed, and
untrusted images that are too large or damaged refused before they cost anything.

Images are made with Pillow in each test; the end-to-end path (a file sent encrypted, reported,
previewed and revealed over HTTP) is in tests/test_e2ee_e2e.py."""

from __future__ import annotations

import io
import random
import struct
import zlib
from typing import Any

import pytest
from PIL import Image

from server.media_preview import (
    MAX_PREVIEW_PIXELS,
    PREVIEW_EDGE,
    HeldBack,
    PreviewError,
    Shown,
    shown,
    shown_async,
)

HIDDEN = {"blur": True, "greyscale": True, "muted": True}


def encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def checkerboard(width: int = 320, height: int = 240, square: int = 8) -> Image.Image:
    """Red and blue squares: sharp edges everywhere, no grey in it."""
    image = Image.new("RGB", (width, height), (220, 20, 20))
    for y in range(0, height, square):
        for x in range((y // square) % 2 * square, width, 2 * square):
            image.paste((20, 20, 220), (x, y, x + square, y + square))
    return image


def opened(result: Shown) -> Image.Image:
    assert result.preview
    image = Image.open(io.BytesIO(result.body))
    assert image.format == "PNG"
    return image


def edge_energy(image: Image.Image) -> float:
    """Mean absolute difference between horizontal neighbours, in grey levels."""
    grey = image.convert("L")
    width, height = grey.size
    pixels = grey.load()
    assert pixels is not None
    total = sum(abs(int(pixels[x + 1, y]) - int(pixels[x, y])) for y in range(height) for x in range(width - 1))
    return total / ((width - 1) * height)


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` and holds almost nothing: a bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP", "BMP"])
def test_an_image_is_shown_greyscale_and_blurred_until_revealed(fmt: str) -> None:
    source = checkerboard()
    data = encoded(source, fmt)
    sharp = edge_energy(source)

    hidden = shown(data, "image/whatever", HIDDEN)
    with opened(hidden) as preview:
        assert preview.mode == "L" and preview.size == source.size
        assert edge_energy(preview) < 0.1 * sharp, "not blurred"
    assert hidden.applied == ("blur", "greyscale")

    unblurred = shown(data, "image/png", {**HIDDEN, "blur": False})
    with opened(unblurred) as preview:
        assert preview.mode == "L" and edge_energy(preview) > 0.5 * edge_energy(source.convert("L"))
    assert unblurred.applied == ("greyscale",)

    coloured = shown(data, "image/png", {**HIDDEN, "greyscale": False})
    with opened(coloured) as preview:
        assert preview.mode == "RGB" and edge_energy(preview) < 0.1 * sharp
        red, _, blue = (band for band in preview.split())
        assert max(red.getextrema()[1], blue.getextrema()[1]) > 80  # colour kept
    assert coloured.applied == ("blur",)

    revealed = shown(data, "image/png", {"blur": False, "greyscale": False, "muted": True})
    assert revealed == Shown(data, preview=False)


def test_the_preview_is_small_turned_upright_first_frame_and_carries_no_metadata() -> None:
    big = shown(encoded(checkerboard(3000, 1500, 50), "JPEG"), "image/jpeg", HIDDEN)
    with opened(big) as preview:
        assert preview.size == (PREVIEW_EDGE, PREVIEW_EDGE // 2)

    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to show
    exif[0x010E] = "GPS and a name the sender did not mean to send"  # ImageDescription
    turned = shown(encoded(checkerboard(200, 100), "JPEG", exif=exif), "image/jpeg", HIDDEN)
    with opened(turned) as preview:
        assert preview.size == (100, 200)
        assert not preview.getexif() and b"did not mean" not in turned.body

    frames = [Image.new("RGB", (40, 40), (250, 0, 0)), Image.new("RGB", (40, 40), (0, 0, 250))]
    animated = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    first = shown(animated, "image/gif", {**HIDDEN, "greyscale": False})
    with opened(first) as preview:
        red, _, blue = preview.convert("RGB").getpixel((20, 20))  # type: ignore[misc]
        assert red > 200 and blue < 50


def test_the_bytes_decide_what_a_file_is_not_the_declared_type() -> None:
    image = encoded(checkerboard(), "PNG")
    assert shown(image, "text/plain", HIDDEN).preview  # an image declared as text is still blurred
    with pytest.raises(HeldBack) as held:
        shown(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "image/png", HIDDEN)
    assert held.value.needed == ["unblur", "colour"]  # EPS is never decoded (Ghostscript)


@pytest.mark.parametrize(
    ("media_type", "display", "needed"),
    [
        ("audio/ogg", HIDDEN, ["unmute"]),
        ("video/mp4", HIDDEN, ["unblur", "colour", "unmute"]),
        ("video/mp4", {**HIDDEN, "blur": False}, ["colour", "unmute"]),
        ("image/png", HIDDEN, ["unblur", "colour"]),
        ("application/pdf", HIDDEN, ["unblur"]),
        ("text/plain", {**HIDDEN, "greyscale": False}, ["unblur"]),
        ("", HIDDEN, ["unblur"]),
    ],
)
def test_a_file_that_cannot_be_previewed_is_held_back_until_revealed(
    media_type: str, display: dict[str, bool], needed: list[str]
) -> None:
    data = b"not an image: " + bytes(range(256))
    with pytest.raises(HeldBack) as held:
        shown(data, media_type, display)
    assert held.value.needed == needed
    revealed = {flag: False for flag in ("blur", "greyscale", "muted")}
    assert shown(data, media_type, revealed) == Shown(data, preview=False)


def test_an_image_too_large_to_preview_is_refused_before_it_is_decoded() -> None:
    bomb = png_header(20_000, 20_000)  # 400 megapixels declared in ~100 bytes
    assert len(bomb) < 200 and 20_000 * 20_000 > MAX_PREVIEW_PIXELS
    for declared in (bomb, png_header(7_100, 7_100)):  # Pillow's bomb limit, and ours below it
        with pytest.raises(PreviewError, match="too large to preview"):
            shown(declared, "image/png", HIDDEN)
    with pytest.raises(PreviewError, match=r"\(7100 x 7100 pixels; at most 50,000,000"):
        shown(png_header(7_100, 7_100), "image/png", HIDDEN)
    # Revealed (unblur and colour), it is handed over as it is, never decoded.
    revealed = {"blur": False, "greyscale": False, "muted": True}
    for declared in (bomb, png_header(7_100, 7_100)):
        assert shown(declared, "image/png", revealed) == Shown(declared, preview=False)
    with pytest.raises(PreviewError, match="too large"):  # one aspect revealed is not enough
        shown(bomb, "image/png", {**revealed, "greyscale": True})


@pytest.mark.parametrize("cut", [60, 400, -30])
def test_a_damaged_image_is_refused_with_a_clear_error(cut: int) -> None:
    data = encoded(Image.frombytes("RGB", (64, 64), random.Random(1).randbytes(64 * 64 * 3)), "PNG")
    with pytest.raises(PreviewError, match="damaged"):
        shown(data[:cut], "image/png", HIDDEN)


async def test_previews_are_made_off_the_event_loop() -> None:
    data = encoded(checkerboard(), "PNG")
    result = await shown_async(data, "image/png", HIDDEN)
    assert result == shown(data, "image/png", HIDDEN)
