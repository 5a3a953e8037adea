"""``identity``: returns the structure image unchanged. A floor for every metric
(perfect structure, no appearance transfer) and the dummy method of the tests."""

from __future__ import annotations

from splice.core.geometry import Geometry
from splice.core.imageio import load_rgb
from splice.core.method import Method, MethodResult, Pair, RunSettings


class IdentityMethod(Method):
    name = "identity"
    paper = "-"
    summary = "Output = structure image (a reference point and the tests' dummy method)."
    in_smoke = True

    def config(self, settings: RunSettings) -> dict:
        return {"method": "identity"}

    def run(self, pair: Pair, settings: RunSettings) -> MethodResult:
        s = load_rgb(pair.structure, role="structure image")
        load_rgb(pair.appearance, role="appearance image")  # a bad appearance image fails here too
        return MethodResult(
            image=s.image.copy(), geometry=Geometry.identity(s.size), info={"inputs": {"structure": s.record()}}
        )
