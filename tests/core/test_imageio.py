"""Bad and odd input images: one-line errors or documented, recorded conversions."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from splice.core.errors import ImageError
from splice.core.imageio import load_rgb
from tests.support.images import make_image


def test_missing_folder_and_not_an_image(tmp_path):
    with pytest.raises(ImageError, match="structure image not found: .*nope.png"):
        load_rgb(tmp_path / "nope.png", role="structure image")
    with pytest.raises(ImageError, match="is a folder"):
        load_rgb(tmp_path)
    p = tmp_path / "notes.jpg"
    p.write_text("hello")
    with pytest.raises(ImageError, match="not an image Pillow can read: .*notes.jpg"):
        load_rgb(p)


def test_truncated_jpeg(tmp_path):
    buf = io.BytesIO()
    make_image(200, 150).save(buf, "JPEG")
    p = tmp_path / "cut.jpg"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_rgb(p)


def test_rgba_composited_over_white_and_recorded(tmp_path):
    arr = np.zeros((80, 80, 4), np.uint8)
    arr[..., 0] = 200
    arr[..., 3] = 0
    arr[:40, :, 3] = 255
    p = tmp_path / "a.png"
    Image.fromarray(arr, "RGBA").save(p)
    li = load_rgb(p)
    out = np.asarray(li.image)
    assert out[0, 0].tolist() == [200, 0, 0] and out[79, 0].tolist() == [255, 255, 255]
    assert li.conversions == ["RGBA composited over white"]
    # opaque RGBA equals the reference's plain convert("RGB")
    arr[..., 3] = 255
    Image.fromarray(arr, "RGBA").save(p)
    li = load_rgb(p)
    assert np.array_equal(np.asarray(li.image), np.asarray(Image.open(p).convert("RGB")))


@pytest.mark.parametrize("mode", ["P", "L", "CMYK", "LA", "1"])
def test_odd_modes(tmp_path, mode):
    base = make_image(90, 70)
    im = base.convert(mode)
    p = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    im.save(p)
    li = load_rgb(p)
    assert li.image.mode == "RGB" and li.image.size == (90, 70)
    assert li.source_mode == mode and li.conversions


def test_16bit_grayscale_scaled(tmp_path):
    arr = (np.arange(100 * 80).reshape(80, 100) * 8).astype(np.uint16)
    p = tmp_path / "g16.png"
    Image.fromarray(arr).save(p)
    li = load_rgb(p)
    got = np.asarray(li.image)[..., 0].astype(int)
    want = np.round(arr / 65535 * 255).astype(int)
    assert np.array_equal(got, want)
    assert "scaled to 8-bit" in li.conversions[0]


def test_exif_rotation_applied(tmp_path):
    im = make_image(120, 80)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    p = tmp_path / "rot.jpg"
    im.save(p, exif=exif.tobytes())
    li = load_rgb(p)
    assert li.image.size == (80, 120) and li.source_size == (120, 80)
    assert li.conversions == ["EXIF orientation 6 applied"]


def test_tiny_and_huge(tmp_path, monkeypatch):
    p = tmp_path / "tiny.png"
    make_image(40, 100).save(p)
    with pytest.raises(ImageError, match="is 40x100; at least 64 px"):
        load_rgb(p)
    big = tmp_path / "big.png"
    Image.new("RGB", (3000, 2000)).save(big)
    monkeypatch.setenv("SPLICE_MAX_PIXELS", "1000000")
    with pytest.raises(ImageError, match="3000x2000 .* above the 1 MP limit"):
        load_rgb(big)


def test_16bit_colour_png_is_read_as_8_bits_and_said(tmp_path):
    """Pillow reads a 16-bit RGB PNG as 8-bit RGB (the high byte) without a word; the record says so."""
    import struct
    import zlib

    w, h = 80, 70
    arr = np.random.default_rng(0).integers(0, 65536, (h, w, 3)).astype(">u2")

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + arr[y].tobytes() for y in range(h))
    path = tmp_path / "rgb16.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))  # fmt: skip
    loaded = load_rgb(path)
    assert loaded.conversions == ["16-bit RGB PNG read as 8 bits per channel (Pillow keeps the high byte)"]
    assert np.array_equal(np.asarray(loaded.image), (arr.astype(np.int64) >> 8).astype(np.uint8))
    make_image(80, 70).save(tmp_path / "rgb8.png")
    assert load_rgb(tmp_path / "rgb8.png").conversions == []  # an 8-bit PNG: nothing to say
