"""``get_cfg``: a nested attribute node with detectron2's defaults for the keys the suite touches."""

import copy
import os

from detectron2 import CALLS


class CfgNode(dict):
    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        if name not in self:
            raise KeyError(f"Non-existent config key: {name}")  # as yacs does for unknown keys
        self[name] = value

    def clone(self):
        return copy.deepcopy(self)

    def merge_from_file(self, path):
        CALLS.append(("merge_from_file", path))
        base = os.path.basename(os.path.dirname(path))
        if base == "COCO-PanopticSegmentation":
            self.MODEL.META_ARCHITECTURE = "PanopticFPN"
            self.DATASETS.TEST = ("coco_2017_val_panoptic_separated",)
        elif base == "COCO-InstanceSegmentation":
            self.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"
            self.DATASETS.TEST = ("coco_2017_val",)
        else:
            raise FileNotFoundError(path)


def _node(**kw):
    return CfgNode({k: _node(**v) if isinstance(v, dict) else v for k, v in kw.items()})


def get_cfg():
    # detectron2/config/defaults.py
    return _node(
        MODEL=dict(DEVICE="cuda", WEIGHTS="", META_ARCHITECTURE="GeneralizedRCNN",
                   ROI_HEADS=dict(SCORE_THRESH_TEST=0.05, NMS_THRESH_TEST=0.5),
                   PANOPTIC_FPN=dict(COMBINE=dict(OVERLAP_THRESH=0.5, STUFF_AREA_LIMIT=4096,
                                                  INSTANCES_CONFIDENCE_THRESH=0.5))),
        INPUT=dict(MIN_SIZE_TEST=800, MAX_SIZE_TEST=1333, FORMAT="BGR"),
        DATASETS=dict(TEST=()),
    )
