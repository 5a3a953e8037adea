"""The transform from a structure image to a method's output.

Methods return outputs of different shapes (native size, a 512 centre crop, a 512
stretch, 256 squares). Every result records a :class:`Geometry`: crop a box out of the
structure image, then resize that box to the output size. Applying the same geometry
to the structure image (or its masks) makes it pixel-aligned with the output before
any paired metric (PROTOCOL.md, "Geometry first").

Its one text form (method YAMLs, ``precomputed``'s ``geometry=``, the command line's ``--geometry``):

=====================  =====================================================================
``native``             output = structure image, same size (``identity`` is a synonym)
``center-crop WxH``    largest centred box with the output's aspect, resized to WxH
                       (``center-crop N`` = NxN; the cross-image-attention input rule)
``stretch WxH``        whole image resized to WxH, aspect not kept (Eye-for-an-eye: 512x512)
``resize WxH``         the same transform as ``stretch WxH``; both are labelled ``resize`` when
                       the aspect ratio is kept and ``stretch`` when it is not
``resize-short N``     aspect-preserving resize, shorter side N (Swapping Autoencoder's scale_shortside)
``resize-long N``      aspect-preserving resize, longer side N
=====================  =====================================================================

:func:`reconcile` then adjusts the predicted geometry to the size the method really wrote: official
code often rounds sizes (e.g. to multiples of 16), which is a slight resize of the same box; an
output whose aspect differs much from the prediction means the geometry string is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from PIL import Image

Box = tuple[int, int, int, int]  # left, top, right, bottom (right/bottom exclusive)
Size = tuple[int, int]  # (W, H)


@dataclass(frozen=True)
class Geometry:
    """Structure image of ``source`` size -> crop ``box`` -> resize to ``output`` size.

    ``kind`` is a label for people ("identity", "resize", "center-crop", "stretch",
    "crop"); the numbers alone define the transform.
    """

    source: Size
    box: Box
    output: Size
    kind: str = "resize"

    # -- constructors -------------------------------------------------------------------
    @classmethod
    def identity(cls, size: Size) -> "Geometry":
        w, h = size
        return cls(source=(w, h), box=(0, 0, w, h), output=(w, h), kind="identity")

    @classmethod
    def resize(cls, source: Size, output: Size) -> "Geometry":
        w, h = source
        if tuple(output) == (w, h):
            return cls.identity(source)
        kind = "resize" if _same_aspect(source, output) else "stretch"
        return cls(source=(w, h), box=(0, 0, w, h), output=tuple(output), kind=kind)

    @classmethod
    def resize_short_side(cls, source: Size, short: int) -> "Geometry":
        """Aspect-preserving resize so that the shorter side is ``short`` (rounded)."""
        w, h = source
        if w <= h:
            out = (short, max(1, round(h * short / w)))
        else:
            out = (max(1, round(w * short / h)), short)
        return cls.resize(source, out)

    @classmethod
    def center_crop(cls, source: Size, output: Size) -> "Geometry":
        """Largest centred box with the output's aspect ratio, resized to ``output``."""
        w, h = source
        ow, oh = output
        if w * oh > h * ow:  # source wider than output: crop width
            cw, ch = round(h * ow / oh), h
        else:
            cw, ch = w, round(w * oh / ow)
        left, top = (w - cw) // 2, (h - ch) // 2
        return cls(source=(w, h), box=(left, top, left + cw, top + ch), output=(ow, oh), kind="center-crop")

    @classmethod
    def stretch(cls, source: Size, output: Size) -> "Geometry":
        w, h = source
        return cls(source=(w, h), box=(0, 0, w, h), output=tuple(output), kind="stretch")

    # -- use ----------------------------------------------------------------------------
    @property
    def is_identity(self) -> bool:
        return self.box == (0, 0, *self.source) and tuple(self.output) == tuple(self.source)

    def then(self, other: "Geometry") -> "Geometry":
        """This geometry followed by ``other`` (whose source must be this output)."""
        if tuple(other.source) != tuple(self.output):
            raise ValueError(f"cannot compose: {self.output} -> {other.source}")
        sx = (self.box[2] - self.box[0]) / self.output[0]
        sy = (self.box[3] - self.box[1]) / self.output[1]
        left, top, right, bottom = other.box
        box = (
            round(self.box[0] + left * sx),
            round(self.box[1] + top * sy),
            round(self.box[0] + right * sx),
            round(self.box[1] + bottom * sy),
        )
        kinds = [k for k in (self.kind, other.kind) if k != "identity"]
        kind = "+".join(kinds) if kinds else "identity"
        return Geometry(source=self.source, box=box, output=other.output, kind=kind)

    def apply(self, image: Image.Image, resample: int = Image.Resampling.BICUBIC) -> Image.Image:
        """Apply to a PIL image of size ``source`` (use NEAREST for label masks)."""
        if tuple(image.size) != tuple(self.source):
            raise ValueError(
                f"geometry expects a {self.source[0]}x{self.source[1]} image, got {image.size[0]}x{image.size[1]}"
            )
        if self.is_identity:
            return image
        out = image
        if self.box != (0, 0, *self.source):
            out = out.crop(self.box)
        if tuple(out.size) != tuple(self.output):
            out = out.resize(tuple(self.output), resample=resample)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": list(self.source), "box": list(self.box), "output": list(self.output)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Geometry":
        return cls(
            source=tuple(d["source"]), box=tuple(d["box"]), output=tuple(d["output"]), kind=d.get("kind", "resize")
        )


def _same_aspect(a: Size, b: Size, tol: float = 0.01) -> bool:
    return abs(a[0] / a[1] - b[0] / b[1]) <= tol * (a[0] / a[1])


# -- the text form ---------------------------------------------------------------------------------
ASPECT_TOLERANCE = 0.04
"""Largest relative aspect difference between a predicted and a real output accepted as rounding."""

_SIZE = re.compile(r"^\s*(\d+)\s*(?:[xX*]\s*(\d+))?\s*$")
KINDS = ("native", "identity", "center-crop", "stretch", "resize", "resize-short", "resize-long")


def _parse_size(text: str, spec: str) -> Size:
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"geometry {spec!r}: expected a size like 512x512 or 512, got {text!r}")
    w = int(m.group(1))
    h = int(m.group(2)) if m.group(2) else w
    if w <= 0 or h <= 0:
        raise ValueError(f"geometry {spec!r}: sizes must be positive")
    return w, h


def parse_geometry(spec: str, source: Size) -> Geometry:
    """The geometry that ``spec`` (see the module docstring) applies to a structure image of size ``source``.

    Raises:
        ValueError: unknown kind or bad size (the caller names the file the spec came from).
    """
    text = " ".join(str(spec).strip().split())
    kind, _, arg = text.partition(" ")
    kind = kind.lower()
    if kind in ("native", "identity"):
        if arg:
            raise ValueError(f"geometry {spec!r}: 'native' takes no size")
        return Geometry.identity(source)
    if kind not in KINDS:
        raise ValueError(f"unknown geometry {spec!r}; use one of: native, center-crop WxH, stretch WxH, resize WxH, "
                         "resize-short N, resize-long N")
    if not arg:
        raise ValueError(f"geometry {spec!r}: {kind} needs a size")
    if kind in ("resize-short", "resize-long"):
        n, n2 = _parse_size(arg, spec)
        if n != n2:
            raise ValueError(f"geometry {spec!r}: {kind} takes one number")
        if kind == "resize-short":
            return Geometry.resize_short_side(source, n)
        w, h = source
        out = (n, max(1, round(h * n / w))) if w >= h else (max(1, round(w * n / h)), n)
        return Geometry.resize(source, out)
    size = _parse_size(arg, spec)
    if kind == "center-crop":
        return Geometry.center_crop(source, size)
    return Geometry.resize(source, size)  # stretch and resize: the label follows the aspect ratio


def reconcile(predicted: Geometry, actual: Size) -> tuple[Geometry, str | None]:
    """Fit ``predicted`` to the output size the method actually produced.

    Returns the geometry (same crop box, output = ``actual``) and a note when the size differed.

    Raises:
        ValueError: the actual aspect ratio differs from the prediction by more than :data:`ASPECT_TOLERANCE`.
    """
    actual = (int(actual[0]), int(actual[1]))
    if actual == tuple(predicted.output):
        return predicted, None
    pw, ph = predicted.output
    pa, aa = pw / ph, actual[0] / actual[1]
    if abs(aa - pa) > ASPECT_TOLERANCE * pa:
        raise ValueError(
            f"output is {actual[0]}x{actual[1]} but the geometry predicts {pw}x{ph} ({predicted.kind}); "
            "the geometry setting does not describe this method"
        )
    geometry = Geometry(source=predicted.source, box=predicted.box, output=actual, kind=predicted.kind)
    return geometry, f"output {actual[0]}x{actual[1]} instead of the predicted {pw}x{ph} (rounded by the method)"


def infer_geometry(source: Size, output: Size) -> Geometry:
    """The geometry of an output of unknown origin (``precomputed`` without ``geometry=``).

    Rule: same size -> identity; same aspect ratio (within 1 %) -> aspect-preserving resize;
    otherwise -> centre crop to the output's aspect, then resize. A stretch is never guessed
    (it cannot be told from a crop by sizes alone); say ``geometry=stretch WxH`` when it applies.
    """
    source = (int(source[0]), int(source[1]))
    output = (int(output[0]), int(output[1]))
    if source == output:
        return Geometry.identity(source)
    sa, oa = source[0] / source[1], output[0] / output[1]
    if abs(sa - oa) <= 0.01 * sa:
        return Geometry.resize(source, output)
    return Geometry.center_crop(source, output)
