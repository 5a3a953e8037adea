"""Reports of splice-bench: comparison grids, metric tables, plots and an HTML page, from stored results only.

They regenerate the comparisons of *Splicing ViT Features for Semantic Appearance Transfer* (Tumanyan et al.,
CVPR 2022): its qualitative figures (grids), its IoU table (Table 2, mean ± std) and the distributions behind
them. Modules: :mod:`reports.results` (what a report reads), :mod:`reports.grids`, :mod:`reports.tables`,
:mod:`reports.plots`, :mod:`reports.pairs` (thumbnails and a page per pair), :mod:`reports.page` (index.html,
report.md: results first, provenance last) and :mod:`reports.build` (all of it).

Public API::

    from reports import build_report, GridStyle
    build_report("runs/demo", dest="runs/demo/report")
"""

from .build import ReportSummary, build_report  # noqa: F401
from .grids import GridStyle, build_grid  # noqa: F401
