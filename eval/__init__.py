"""Evaluation for splice-bench: layout IoU, ViT distances, aggregation and tables.

Implements the measurements of PROTOCOL.md for *Splicing ViT Features for Semantic
Appearance Transfer* (Tumanyan et al., CVPR 2022): the Mask R-CNN layout IoU of its
Table 2 and the DINO-ViT structure/appearance distances that follow its losses.

Modules (imported on use, so ``import eval`` never loads torch):

- :mod:`eval.metrics`    metric keys, columns and ``higher_is_better``
- :mod:`eval.aggregate`  run store -> one pandas row per job (``load_results``)
- :mod:`eval.tables`     mean ± std tables per data set and method, md/csv/latex
- :mod:`eval.iou`        IoU on boolean masks (union, per class, instance-matched)
- :mod:`eval.align`      the recorded geometry applied to the structure image
- :mod:`eval.detector`   COCO Mask R-CNN (torchvision; detectron2 when installed)
- :mod:`eval.cache`      content-hash cache of masks and ViT features
- :mod:`eval.layout`     align + detect (cached) + IoU for one pair -> ``iou.json``
- :mod:`eval.vit_metrics` ViT distances over a run, through the cache
- :mod:`eval.scoring`    ``splice score``: every finished job of a run, resumable
- :mod:`eval.vit_distances` (lead) and :mod:`eval.study` (2AFC study) live here too.
"""

PROTOCOL_VERSION = "1"
"""Version of the scoring protocol written into every metric record (PROTOCOL.md)."""
