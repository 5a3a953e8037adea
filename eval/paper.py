"""The Splice paper's Table 2, to show beside our numbers (``splice table --paper``, the report's tables).

Tumanyan, Bar-Tal, Bagon, Dekel, "Splicing ViT Features for Semantic Appearance Transfer", CVPR 2022,
Table 2: layout IoU ("semantic segmentation off-the-shelf model (e.g., MaskRCNN)"), mean ± std as printed.
SA is Swapping Autoencoder (Park et al., NeurIPS 2020). The paper has no AFHQ row, and no SA number on
Wild-Pairs ("—"). Values are kept as the printed strings: the Mountains WCT2 entry prints a standard deviation
of 0.82, which IoUs in [0, 1] with a mean of 0.96 cannot have (at most sqrt(0.96 * 0.04) = 0.196); we show it
as printed, with that note.
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCE = "Tumanyan et al., CVPR 2022, Table 2"


@dataclass(frozen=True)
class PaperValue:
    mean: str | None  # as printed; None: the paper shows "—"
    std: str | None
    note: str | None = None

    def text(self, pm: str = "±") -> str:
        return "—" if self.mean is None else f"{self.mean} {pm} {self.std}"


WCT2_NOTE = ("printed as 0.96 ± 0.82; IoUs in [0, 1] with mean 0.96 have a standard deviation of at most "
             "sqrt(0.96 * 0.04) = 0.196, so the printed value cannot be right")  # fmt: skip

TABLE2: dict[str, dict[str, PaperValue]] = {
    "wild-pairs": {
        "swapping-autoencoder": PaperValue(None, None, "the paper shows no SA value on Wild-Pairs"),
        "strotss": PaperValue("0.83", "0.11"),
        "wct2": PaperValue("0.89", "0.06"),
        "splice": PaperValue("0.88", "0.06"),
    },
    "mountains": {
        "swapping-autoencoder": PaperValue("0.91", "0.07"),
        "strotss": PaperValue("0.94", "0.12"),
        "wct2": PaperValue("0.96", "0.82", WCT2_NOTE),
        "splice": PaperValue("0.95", "0.10"),
    },
}
"""data set -> our method name -> the paper's value."""

NO_ROW = {"afhq": "the paper has no Table 2 row for AFHQ"}

ALIASES = {"paper-ours": "splice", "paper-sa": "swapping-autoencoder", "sa": "swapping-autoencoder",
           "paper-strotss": "strotss", "paper-wct2": "wct2"}  # fmt: skip
"""Method names of a run that stand for a paper column (``splice bench import`` files the authors' stored
outputs as ``paper-<folder>``)."""


def paper_value(dataset: str, method: str) -> PaperValue | None:
    """The paper's Table 2 value for our ``method`` on ``dataset``, or None when the paper has none."""
    return TABLE2.get(dataset, {}).get(ALIASES.get(method, method))


def paper_methods(dataset: str) -> list[str]:
    return list(TABLE2.get(dataset, {}))
