"""``get_config_file`` / ``get_checkpoint_url`` with the real model-zoo entries the suite uses."""

import os

from detectron2 import CALLS

S3_PREFIX = "https://dl.fbaipublicfiles.com/detectron2/"
URL_SUFFIX = {  # detectron2/model_zoo/model_zoo.py (_ModelZooUrls.CONFIG_PATH_TO_URL_SUFFIX)
    "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x": "137849600/model_final_f10217.pkl",
    "COCO-PanopticSegmentation/panoptic_fpn_R_50_3x": "139514569/model_final_c10459.pkl",
    "COCO-PanopticSegmentation/panoptic_fpn_R_101_3x": "139514519/model_final_cafdb1.pkl",
}
CONFIG_DIR = os.path.join(os.path.dirname(__file__), "configs")


def get_config_file(config_path):
    CALLS.append(("get_config_file", config_path))
    name = config_path.replace(".yaml", "")
    if name not in URL_SUFFIX or not config_path.endswith(".yaml"):
        raise RuntimeError(f"{config_path} not available in Model Zoo!")
    return os.path.join(CONFIG_DIR, config_path)


def get_checkpoint_url(config_path):
    CALLS.append(("get_checkpoint_url", config_path))
    name = config_path.replace(".yaml", "").replace(".py", "")
    if name not in URL_SUFFIX:
        raise RuntimeError(f"Pretrained model for {config_path} is not available!")
    return S3_PREFIX + name + "/" + URL_SUFFIX[name]
