"""Evaluation for splice-bench: layout IoU, ViT distances, aggregation and tables.

Implements the measurements of PROTOCOL.md (version 2) for *Splicing ViT Features for Semantic
Appearance Transfer* (Tumanyan et al., CVPR 2022): the layout IoU of its Table 2 (COCO Mask R-CNN
objects, or COCO-panoptic label maps of objects and stuff) and the DINO-ViT structure/appearance
distances that follow its losses.

Modules (imported on use, so ``import eval`` never loads torch):

- :mod:`eval.scorers`    the one metric registry: every metric (layout IoU, ViT distances, the measures), what it
                         compares, its numbers and directions, protocol version, needs, cache key
- :mod:`eval.measures`   the field's metrics (LPIPS, DISTS, CLIP, DINO, DINOv2, Gram, Lab EMD), each computed by
                         the library that defines it, with a shared content-hash feature store
- :mod:`eval.agreement`  which metric agrees with the 2AFC study's raters (``splice study agreement``)
- :mod:`eval.scoring`    ``splice score``: every finished job of a run, resumable, tied to image hashes
- :mod:`eval.metrics`    table metric keys, where their numbers live, ``higher_is_better``
- :mod:`eval.aggregate`  run store -> one pandas row per job (``load_results``)
- :mod:`eval.tables`     tables on common pairs with paired bootstrap differences, md/csv/latex
- :mod:`eval.paper`      the paper's Table 2 values
- :mod:`eval.iou`        IoU on boolean masks (union, per class, instance-matched)
- :mod:`eval.labelmaps`  the 133 COCO panoptic classes, merged label maps, layout mIoU and pixel accuracy
- :mod:`eval.align`      the recorded geometry applied to the structure image
- :mod:`eval.detector`   COCO Mask R-CNN (torchvision; detectron2 when installed)
- :mod:`eval.segmenter`  COCO-panoptic label maps (Mask2Former via transformers; detectron2 Panoptic FPN)
- :mod:`eval.d2`         what the detectron2 backends share (offline weights, config, input)
- :mod:`eval.cache`      content-hash cache of masks, label maps and ViT features
- :mod:`eval.layout`     align + segment (cached) + score for one pair -> ``iou.json`` / ``panoptic.json``
- :mod:`eval.vit_metrics` the one ViT scorer (one pair or a run), through the cache
- :mod:`eval.study` (2AFC study) lives here too.
"""

PROTOCOL_VERSION = "2"
"""Version of the scoring protocol written into every metric record (PROTOCOL.md)."""
