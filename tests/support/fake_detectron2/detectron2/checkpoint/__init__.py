import os

from detectron2 import CALLS


class DetectionCheckpointer:
    def __init__(self, model):
        self.model = model

    def load(self, path):
        CALLS.append(("load", path))
        if path and not os.path.isfile(path):
            raise FileNotFoundError(path)
        self.model.loaded = path
