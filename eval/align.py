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

On the command line the geometry is given in the one text form of :mod:`splice.core.geometry` (the form
method YAMLs and ``precomputed`` use: ``center-crop 512x512``, ``stretch 512x512``, ...) with
``--geometry``, or taken from a job's record with ``--record JOB_DIR/record.json``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from PIL import Image

from splice.core.errors import UserError
from splice.core.geometry import Geometry, parse_geometry, reconcile

log = logging.getLogger(__name__)


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


def geometry_from_text(spec: str, structure_size: tuple[int, int], output_size: tuple[int, int],
                       option: str = "--geometry") -> Geometry:  # fmt: skip
    """``--geometry SPEC``: the one text form of :mod:`splice.core.geometry` (``native``, ``center-crop WxH``,
    ``stretch WxH``, ``resize WxH``, ``resize-short N``, ``resize-long N``), applied to the structure image and
    fitted to the output's real size as the runner does (:func:`splice.core.geometry.reconcile`)."""
    try:
        predicted = parse_geometry(spec, structure_size)
        geometry, _ = reconcile(predicted, output_size)
    except ValueError as e:
        hint = "; a job's geometry: --record JOB_DIR/record.json" if spec.strip().startswith("{") or \
            spec.endswith(".json") else ""  # fmt: skip
        raise AlignmentError(f"{option}: {e}{hint}") from None
    return geometry


def read_job_record(path: str | Path, option: str = "--record"):
    """The :class:`~splice.core.record.JobRecord` at ``path`` (a job's ``record.json`` or its folder)."""
    from splice.core.atomic import read_json
    from splice.core.record import JobRecord

    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "record.json"
    if not p.is_file():
        raise UserError(f"{option} {path}: no job record there; give JOB_DIR/record.json")
    try:
        rec = JobRecord.from_dict(read_json(p))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{option} {p} is not a job record ({e})") from None
    if not rec.ok:
        raise UserError(f"{option} {p}: the job did not finish (status {rec.status}); nothing to score")
    return p, rec
