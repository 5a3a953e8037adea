"""The images raters see: aligned, same size, no metadata.

PROTOCOL.md ("Geometry first") applies to the study too: methods return outputs of
different shapes (a native-size Splice output, a 512 centre crop, a 256 square), and a
rater comparing them against image A must see the same part of the scene in all three.
For one comparison we intersect the two outputs' recorded crop boxes (in structure-image
pixels), cut that region out of the structure image and out of each output, and resize all
three to one display size. Image A is the structure image in grayscale (Splice paper,
Tumanyan et al., CVPR 2022, user study).

Every image is re-encoded from its pixels as a bare PNG (IHDR, IDAT, IEND: no text
chunks, EXIF, ICC profile or time stamp), so nothing about its origin travels with it.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from splice.core.errors import UserError
from splice.core.geometry import Geometry

FloatBox = tuple[float, float, float, float]


def intersect_boxes(geometries: list[Geometry]) -> FloatBox:
    """The part of the structure image that every geometry's crop box keeps."""
    left = max(g.box[0] for g in geometries)
    top = max(g.box[1] for g in geometries)
    right = min(g.box[2] for g in geometries)
    bottom = min(g.box[3] for g in geometries)
    if right - left < 1 or bottom - top < 1:
        raise UserError(f"the outputs show disjoint parts of the structure image (boxes {[g.box for g in geometries]})")
    return (float(left), float(top), float(right), float(bottom))


def display_size(box: FloatBox, long_side: int) -> tuple[int, int]:
    """(W, H) with the box's aspect ratio and ``long_side`` pixels on its longer side."""
    w, h = box[2] - box[0], box[3] - box[1]
    if w >= h:
        return long_side, max(1, round(long_side * h / w))
    return max(1, round(long_side * w / h)), long_side


def box_in_output(geometry: Geometry, box: FloatBox) -> FloatBox:
    """``box`` (structure-image pixels) in the output's pixels, through ``geometry``."""
    left, top, right, bottom = geometry.box
    sx = geometry.output[0] / (right - left)
    sy = geometry.output[1] / (bottom - top)
    return ((box[0] - left) * sx, (box[1] - top) * sy, (box[2] - left) * sx, (box[3] - top) * sy)


def cut(image: Image.Image, box: FloatBox, size: tuple[int, int]) -> Image.Image:
    """The (sub-pixel) ``box`` of ``image`` resized to ``size`` (bicubic)."""
    if box == (0.0, 0.0, float(image.size[0]), float(image.size[1])) and tuple(image.size) == tuple(size):
        return image.copy()
    return image.transform(tuple(size), Image.Transform.EXTENT, data=box, resample=Image.Resampling.BICUBIC)


def centre_fit(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The largest centred crop of ``image`` with ``size``'s aspect ratio, resized to ``size``."""
    geometry = Geometry.center_crop(image.size, size)
    return cut(image, tuple(float(v) for v in geometry.box), size)  # type: ignore[arg-type]


def fit_long_side(image: Image.Image, long_side: int) -> Image.Image:
    box = (0.0, 0.0, float(image.size[0]), float(image.size[1]))
    return cut(image, box, display_size(box, long_side))


def grayscale(image: Image.Image) -> Image.Image:
    return image.convert("L")


def check_geometry(geometry: Geometry, structure_size: tuple[int, int], where: str) -> None:
    if tuple(geometry.source) != tuple(structure_size):
        raise UserError(
            f"{where}: the recorded geometry expects a {geometry.source[0]}x{geometry.source[1]} structure image but "
            f"the structure image is {structure_size[0]}x{structure_size[1]}; re-run that job (splice bench) or "
            "check that the data root points to the same images"
        )


def bare_png(image: Image.Image) -> bytes:
    """PNG bytes of the pixels only (a fresh image, so no metadata of the source survives)."""
    arr = np.asarray(image)
    fresh = Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8))  # 2-D -> "L", 3 channels -> "RGB"
    buf = io.BytesIO()
    fresh.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def png_chunk_types(data: bytes) -> list[str]:
    """Chunk types of a PNG file, in order (to check that no metadata is present)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, types = 8, []
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        types.append(data[pos + 4 : pos + 8].decode("latin-1"))
        pos += 12 + length
    return types
