"""``ResizeShortestEdge`` as detectron2 implements it (augmentation_impl.py, transform.py)."""

import numpy as np
from PIL import Image

from detectron2 import CALLS


class ResizeTransform:
    def __init__(self, h, w, new_h, new_w, interp):
        self.h, self.w, self.new_h, self.new_w, self.interp = h, w, new_h, new_w, interp

    def apply_image(self, img):
        assert img.shape[:2] == (self.h, self.w)
        CALLS.append(("apply_image", str(img.dtype), img.shape))
        if img.dtype != np.uint8:
            raise AssertionError("stand-in: the suite must resize uint8 arrays (detectron2 then uses PIL)")
        return np.asarray(Image.fromarray(img).resize((self.new_w, self.new_h), self.interp))


class ResizeShortestEdge:
    def __init__(self, short_edge_length, max_size=10**9, sample_style="range", interp=Image.BILINEAR):
        CALLS.append(("ResizeShortestEdge", list(short_edge_length), max_size))
        self.short_edge_length, self.max_size, self.interp = list(short_edge_length), max_size, interp

    def get_transform(self, image):
        h, w = image.shape[:2]
        size = self.short_edge_length[0]
        newh, neww = self.get_output_shape(h, w, size, self.max_size)
        return ResizeTransform(h, w, newh, neww, self.interp)

    @staticmethod
    def get_output_shape(oldh, oldw, short_edge_length, max_size):
        h, w = oldh, oldw
        size = short_edge_length * 1.0
        scale = size / min(h, w)
        if h < w:
            newh, neww = size, scale * w
        else:
            newh, neww = scale * h, size
        if max(newh, neww) > max_size:
            scale = max_size * 1.0 / max(newh, neww)
            newh, neww = newh * scale, neww * scale
        return int(newh + 0.5), int(neww + 0.5)
