"""``build_model``: colour-rule stand-ins of Mask R-CNN and Panoptic FPN that take BGR float32 CHW images.

Mask R-CNN (``GeneralizedRCNN``): a red region is a "cat" (score 0.9), a green one a "dog" (score 0.3); the
soft mask is the red (green) channel / 255 at the resized input's size; boxes with score <= SCORE_THRESH_TEST
are dropped as the ROI heads do. Panoptic FPN: semantic logits at the original size, channel 0 ("things") =
red, "sky" = blue, "grass" = green.
"""

import torch
import torch.nn.functional as F

from detectron2 import CALLS
from detectron2.structures import Instances

CAT, DOG = 15, 16  # thing_classes indices of "cat" and "dog"
SKY, GRASS = 40, 46  # stuff_classes indices of "sky" and "grass"


class _Model(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.loaded = None
        self.inputs = []
        self.weight = torch.nn.Parameter(torch.randn(3))  # random init is seeded by the suite

    def _channels(self, x):
        CALLS.append(("model_input", str(x["image"].dtype), tuple(x["image"].shape), x["height"], x["width"]))
        self.inputs.append(x)
        img = x["image"].float()
        if self.cfg.INPUT.FORMAT == "BGR":
            b, g, r = img[0], img[1], img[2]
        else:
            r, g, b = img[0], img[1], img[2]
        return r / 255.0, g / 255.0, b / 255.0

    def inference(self, batched_inputs, do_postprocess=True):
        assert self.cfg.MODEL.META_ARCHITECTURE == "GeneralizedRCNN" and not do_postprocess
        out = []
        for x in batched_inputs:
            r, g, b = self._channels(x)
            red = r * (r > g) * (r > b)
            green = g * (g > r) * (g > b)
            cand = [(CAT, 0.9, red), (DOG, 0.3, green)]
            keep = [(c, s, m) for c, s, m in cand if m.max() > 0 and s > self.cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST]
            h, w = r.shape
            out.append(Instances((h, w), pred_classes=torch.tensor([c for c, _, _ in keep], dtype=torch.long),
                                 scores=torch.tensor([s for _, s, _ in keep]),
                                 pred_masks=torch.stack([m for _, _, m in keep]) if keep else torch.zeros(0, h, w)))
        return out

    def forward(self, batched_inputs):
        assert self.cfg.MODEL.META_ARCHITECTURE == "PanopticFPN"
        out = []
        for x in batched_inputs:
            r, g, b = self._channels(x)
            logits = torch.full((54, *r.shape), -1.0)
            logits[0], logits[SKY], logits[GRASS] = r, b, g
            logits = F.interpolate(logits[None], size=(x["height"], x["width"]), mode="nearest")[0]
            out.append({"sem_seg": logits})
        return out


def build_model(cfg):
    CALLS.append(("build_model", cfg.MODEL.META_ARCHITECTURE, cfg.MODEL.DEVICE))
    return _Model(cfg)
