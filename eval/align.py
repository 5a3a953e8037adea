"""Pixel alignment of the structure image with an output (PROTOCOL.md, "Geometry first").

Methods return outputs of different shapes (the Splice paper's baselines work at 256 px,
centre crops or stretches). Each job records the :class:`splice.core.geometry.Geometry` from
the structure image to its output; before a paired metric the same transform is applied
to the structure image, so masks (and ViT self-similarities) are computed on an image
that is pixel-aligned with the output.

The ``aligned`` field of metric records says what was done: ``identity`` (same size, no
transform), ``geometry`` (the recorded transform), or ``resize`` (no geometry was
recorded and the sizes differ: a plain resize, with a warning, because it silently
assumes a stretch).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from PIL import Image

from splice.core.errors import UserError
from splice.core.geometry import Geometry

log = logging.getLogger(__name__)

SHORTHANDS = ("identity", "resize", "stretch", "center-crop")


class AlignmentError(UserError):
    """The recorded geometry does not fit the images it is applied to."""


def as_geometry(geometry: Geometry | dict[str, Any] | None) -> Geometry | None:
    if geometry is None or isinstance(geometry, Geometry):
        return geometry
    try:
        return Geometry.from_dict(geometry)
    except (KeyError, TypeError, ValueError) as e:
        raise AlignmentError(f"not a geometry record ({e}): {json.dumps(geometry)[:200]}") from None


def align_structure(
    structure: Image.Image,
    output_size: tuple[int, int],
    geometry: Geometry | dict[str, Any] | None,
    where: str = "",
) -> tuple[Image.Image, str]:
    """The structure image transformed like the output, and how (``identity|geometry|resize``).

    Args:
        structure: the structure image as loaded (:func:`splice.core.imageio.load_rgb`).
        output_size: (W, H) of the output image.
        geometry: the job's recorded geometry (dict or :class:`Geometry`), or None.
        where: names the job or file in error messages.
    """
    geo = as_geometry(geometry)
    at = f" ({where})" if where else ""
    if geo is None:
        if tuple(structure.size) == tuple(output_size):
            return structure, "identity"
        log.warning("no geometry recorded%s: resizing the %dx%d structure image to the %dx%d output", at,
                    *structure.size, *output_size)  # fmt: skip
        return structure.resize(tuple(output_size), resample=Image.Resampling.BICUBIC), "resize"
    if tuple(geo.source) != tuple(structure.size):
        raise AlignmentError(f"geometry{at} expects a {geo.source[0]}x{geo.source[1]} structure image but it is "
                             f"{structure.size[0]}x{structure.size[1]}; was the structure image replaced?")  # fmt: skip
    if tuple(geo.output) != tuple(output_size):
        raise AlignmentError(f"geometry{at} says the output is {geo.output[0]}x{geo.output[1]} but it is "
                             f"{output_size[0]}x{output_size[1]}; the output file does not belong to this record")
    if geo.is_identity:
        return structure, "identity"
    return geo.apply(structure, resample=Image.Resampling.BICUBIC), "geometry"


def geometry_from_option(value: str | None, structure_size: tuple[int, int],
                         output_size: tuple[int, int]) -> Geometry | None:  # fmt: skip
    """``--geometry``: a shorthand (``identity``, ``resize``, ``stretch``, ``center-crop``), a
    JSON object (:meth:`Geometry.to_dict`), or a JSON file holding one (a job's ``record.json``
    works: its ``geometry`` entry is used). None -> None."""
    if value is None or value == "":
        return None
    if value in SHORTHANDS:
        if value == "identity":
            return Geometry.identity(structure_size)
        if value == "center-crop":
            return Geometry.center_crop(structure_size, output_size)
        if value == "stretch":
            return Geometry.stretch(structure_size, output_size)
        return Geometry.resize(structure_size, output_size)
    text = value
    path = Path(value).expanduser()
    if not value.lstrip().startswith("{"):
        if not path.is_file():
            raise AlignmentError(f"--geometry {value!r} is neither {', '.join(SHORTHANDS)}, a JSON object, nor a file")
        text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise AlignmentError(f"--geometry {value[:80]!r} is not valid JSON ({e})") from None
    if isinstance(data, dict) and "geometry" in data and "source" not in data:
        data = data["geometry"]
    if data is None:
        return None
    return as_geometry(data)
