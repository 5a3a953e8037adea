"""The transform from a structure image to a method's output.

Methods return outputs of different shapes (native size, a 512 centre crop, a 512
stretch, 256 squares). Every result records a :class:`Geometry`: crop a box out of the
structure image, then resize that box to the output size. Applying the same geometry
to the structure image (or its masks) makes it pixel-aligned with the output before
any paired metric (PROTOCOL.md, "Geometry first").
"""

from __future__ import annotations

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
        l, t, r, b = other.box
        box = (
            round(self.box[0] + l * sx),
            round(self.box[1] + t * sy),
            round(self.box[0] + r * sx),
            round(self.box[1] + b * sy),
        )
        kinds = [k for k in (self.kind, other.kind) if k != "identity"]
        kind = "+".join(kinds) if kinds else "identity"
        return Geometry(source=self.source, box=box, output=other.output, kind=kind)

    def apply(self, image: Image.Image, resample: int = Image.Resampling.BICUBIC) -> Image.Image:
        """Apply to a PIL image of size ``source`` (use NEAREST for label masks)."""
        if tuple(image.size) != tuple(self.source):
            raise ValueError(f"geometry expects a {self.source[0]}x{self.source[1]} image, got {image.size[0]}x{image.size[1]}")
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
        return cls(source=tuple(d["source"]), box=tuple(d["box"]), output=tuple(d["output"]), kind=d.get("kind", "resize"))


def _same_aspect(a: Size, b: Size, tol: float = 0.01) -> bool:
    return abs(a[0] / a[1] - b[0] / b[1]) <= tol * (a[0] / a[1])
