"""Reading images the way every method in the suite sees them.

One function, :func:`load_rgb`, turns any image file into an 8-bit RGB ``PIL.Image``
and a list of the conversions it applied (recorded in every result):

- EXIF orientation is applied (a phone photo shows upright, as in a viewer).
- RGBA / LA / palette-with-transparency are composited over white. For opaque images
  this equals the reference code's plain ``convert("RGB")``.
- 16-bit and 32-bit grayscale (``I;16``, ``I``, ``F``) are scaled to 8 bits.
- CMYK, YCbCr, LAB and grayscale are converted to RGB by Pillow.

Missing files, files that are not images, truncated files, images below
:data:`MIN_SIDE` pixels on the short side and images above :data:`max_pixels()` are
one-line :class:`~splice.core.errors.ImageError` s naming the file.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from splice.core.errors import ImageError

MIN_SIDE = 64
"""Smallest accepted short side. Splice's U-Net downsamples 5 times and the ViT resizes
to 224; below 64 px the result says nothing about the method."""

DEFAULT_MAX_PIXELS = 64_000_000
"""Largest accepted image (64 MP), checked from the header before decoding. Override with
the environment variable ``SPLICE_MAX_PIXELS``."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def max_pixels() -> int:
    value = os.environ.get("SPLICE_MAX_PIXELS")
    return int(value) if value else DEFAULT_MAX_PIXELS


@dataclass
class LoadedImage:
    """An 8-bit RGB image plus what was done to get it."""

    image: Image.Image
    path: Path
    source_mode: str
    source_size: tuple[int, int]  # (W, H) as stored, before EXIF rotation
    conversions: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    def record(self) -> dict:
        return {
            "path": str(self.path),
            "mode": self.source_mode,
            "stored_size": list(self.source_size),
            "size": list(self.image.size),
            "conversions": list(self.conversions),
        }


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def sha256_image(image: Image.Image) -> str:
    """Content hash of decoded pixels (mode and size included)."""
    h = hashlib.sha256()
    h.update(f"{image.mode}:{image.size[0]}x{image.size[1]}:".encode())
    h.update(image.tobytes())
    return h.hexdigest()


def _png_bit_depth(path: Path) -> int | None:
    """The bit depth a PNG file's header states (None for other files): Pillow reads 16-bit colour PNGs as
    8-bit RGB without saying so, and the record should."""
    try:
        with open(path, "rb") as f:
            head = f.read(26)
    except OSError:
        return None
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return head[24]


def _to_rgb(im: Image.Image, conversions: list[str]) -> Image.Image:
    mode = im.mode
    if mode == "RGB":
        return im
    if mode == "P":
        if "transparency" in im.info:
            im = im.convert("RGBA")
            mode = "RGBA"
        else:
            conversions.append("palette -> RGB")
            return im.convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        alpha = np.asarray(rgba)[..., 3]
        if alpha.min() < 255:
            conversions.append(f"{mode} composited over white")
        else:
            conversions.append(f"{mode} (opaque) -> RGB")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr8 = np.clip(np.round(arr / top * 255.0), 0, 255).astype(np.uint8)
        conversions.append(f"{mode} grayscale scaled to 8-bit (/{int(top)}) -> RGB")
        return Image.fromarray(arr8, mode="L").convert("RGB")
    if mode == "1":
        conversions.append("1-bit -> RGB")
        return im.convert("L").convert("RGB")
    conversions.append(f"{mode} -> RGB")
    return im.convert("RGB")


def load_rgb(path: str | os.PathLike, role: str = "image", min_side: int = MIN_SIDE) -> LoadedImage:
    """Read ``path`` as an 8-bit RGB image (see the module docstring for the rules).

    Args:
        path: the image file.
        role: how to name the image in error messages ("structure image", ...).
        min_side: smallest accepted shorter side in pixels (0 disables the check).
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{role} not found: {path}")
    if path.is_dir():
        raise ImageError(f"{role} is a folder, not an image: {path}")
    limit = max_pixels()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
            w, h = im.size
            if w * h > limit:
                raise ImageError(
                    f"{role} {path} is {w}x{h} ({w * h / 1e6:.0f} MP), above the {limit / 1e6:.0f} MP limit; "
                    "downscale it or raise SPLICE_MAX_PIXELS"
                )
            source_mode, source_size = im.mode, im.size
            im.load()
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{role} is not an image Pillow can read: {path}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{role} {path} is too large to decode safely (decompression bomb limit)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{role} {path} is corrupt or truncated ({e})") from None

    conversions: list[str] = []
    orientation = im.getexif().get(0x0112, 1)
    if orientation not in (1, None):
        im = ImageOps.exif_transpose(im)
        conversions.append(f"EXIF orientation {orientation} applied")
    if im.mode in ("RGB", "RGBA") and _png_bit_depth(path) == 16:
        conversions.append(f"16-bit {im.mode} PNG read as 8 bits per channel (Pillow keeps the high byte)")
    rgb = _to_rgb(im, conversions)
    if min_side and min(rgb.size) < min_side:
        raise ImageError(
            f"{role} {path} is {rgb.size[0]}x{rgb.size[1]}; at least {min_side} px are needed on the shorter side"
        )
    return LoadedImage(image=rgb, path=path, source_mode=source_mode, source_size=source_size, conversions=conversions)


def to_tensor(image: Image.Image):
    """RGB PIL image -> float32 tensor (3, H, W) in [0, 1] (same values as torchvision's ToTensor)."""
    import torch

    arr = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def to_image(tensor) -> Image.Image:
    """Float tensor (3, H, W) or (1, 3, H, W) in [0, 1] -> 8-bit RGB PIL image.

    Values are truncated (``x * 255`` cast to uint8), as torchvision's ``ToPILImage`` does and
    as the reference Splice code saved its outputs.
    """
    import torch

    t = tensor.detach().float().cpu()
    if t.dim() == 4:
        t = t[0]
    arr = (t.clamp(0, 1) * 255.0).to(dtype=torch.uint8).permute(1, 2, 0).contiguous().numpy()
    return Image.fromarray(arr, mode="RGB")


def list_images(folder: str | os.PathLike) -> list[Path]:
    """All image files below ``folder``, sorted, hidden files skipped."""
    out = []
    for p in sorted(Path(folder).rglob("*")):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not any(part.startswith(".") for part in p.parts):
            out.append(p)
    return out
