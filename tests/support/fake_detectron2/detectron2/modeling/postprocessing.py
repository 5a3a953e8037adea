"""``detector_postprocess``: boxes to the output size and soft masks pasted at ``mask_threshold``."""

import torch.nn.functional as F

from detectron2 import CALLS
from detectron2.structures import Instances


def detector_postprocess(results, output_height, output_width, mask_threshold=0.5):
    CALLS.append(("detector_postprocess", output_height, output_width, mask_threshold))
    masks = results.pred_masks  # stand-in: soft masks at the resized input's size
    if len(masks):
        masks = F.interpolate(masks[:, None].float(), size=(output_height, output_width), mode="bilinear",
                              align_corners=False)[:, 0]
    return Instances((output_height, output_width), pred_classes=results.pred_classes, scores=results.scores,
                     pred_masks=masks >= mask_threshold)
