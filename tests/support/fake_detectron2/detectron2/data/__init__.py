"""``MetadataCatalog`` with the COCO names detectron2 registers (builtin_meta.py)."""

import json
from pathlib import Path
from types import SimpleNamespace

# the COCO panoptic categories in COCO_CATEGORIES order (the suite ships them; detectron2 has the same list)
_CATS = json.loads((Path(__file__).resolve().parents[5] / "eval" / "coco_panoptic_classes.json").read_text())
THINGS = [c["name"] for c in _CATS if c["isthing"]]
# _get_coco_panoptic_separated_meta: "things" first, stuff names without "-other"/"-merged"
STUFF = ["things"] + [c["name"].replace("-other", "").replace("-merged", "") for c in _CATS if not c["isthing"]]


class _Catalog:
    def get(self, name):
        if name == "coco_2017_val":
            return SimpleNamespace(name=name, thing_classes=list(THINGS))
        if name == "coco_2017_val_panoptic_separated":
            return SimpleNamespace(name=name, thing_classes=list(THINGS), stuff_classes=list(STUFF))
        raise KeyError(name)


MetadataCatalog = _Catalog()
