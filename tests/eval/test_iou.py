"""eval.iou on synthetic masks with hand-computed answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eval.iou import (
    NO_STRUCTURE_DETECTION,
    Instance,
    layout_scores,
    mask_iou,
    matched_iou,
    pairwise_iou,
    per_class_iou,
    union_iou,
)


def box(shape, top, left, bottom, right):
    m = np.zeros(shape, bool)
    m[top:bottom, left:right] = True
    return m


def span(n, a, b):
    """A 1 x n mask with pixels [a, b) set."""
    m = np.zeros((1, n), bool)
    m[0, a:b] = True
    return m


S = (10, 10)
s1 = box(S, 0, 0, 5, 5)  # 25 px, top-left
s2 = box(S, 5, 5, 10, 10)  # 25 px, bottom-right
o1 = box(S, 0, 0, 5, 10)  # 50 px, top half


def test_mask_iou_basics():
    assert mask_iou(s1, s1) == 1.0
    assert mask_iou(s1, s2) == 0.0
    assert mask_iou(s1, o1) == 0.5  # 25 / 50
    assert math.isnan(mask_iou(np.zeros(S, bool), np.zeros(S, bool)))
    with pytest.raises(ValueError, match="not aligned"):
        mask_iou(s1, np.zeros((10, 11), bool))


def test_union_iou_is_class_agnostic():
    # union of structure = 50 px, output = 50 px, intersection = s1 = 25 -> 25 / 75
    assert union_iou([s1, s2], [o1], S) == pytest.approx(1 / 3)
    assert union_iou([s1, s2], [s2, s1], S) == 1.0
    assert union_iou([s1], [], S) == 0.0


def test_pairwise_and_matched_iou():
    np.testing.assert_allclose(pairwise_iou([s1, s2], [o1]), [[0.5], [0.0]])
    # one output instance for two structure instances: 0.5 / max(2, 1)
    assert matched_iou([s1, s2], [o1]) == pytest.approx(0.25)
    assert matched_iou([s1, s2], [s2, s1]) == 1.0
    assert matched_iou([s1], []) == 0.0 and matched_iou([], [s1]) == 0.0
    assert math.isnan(matched_iou([], []))


def test_matching_is_optimal_not_greedy():
    n = 20
    a, b = span(n, 0, 10), span(n, 0, 4)
    c, d = span(n, 0, 8), span(n, 5, 15)
    # IoU(a,c)=8/10, IoU(a,d)=5/15, IoU(b,c)=4/8, IoU(b,d)=0.
    # Greedy takes a-c (0.8) then b-d (0) -> 0.4; the optimum a-d + b-c = (1/3 + 1/2) / 2 = 5/12.
    np.testing.assert_allclose(pairwise_iou([a, b], [c, d]), [[0.8, 1 / 3], [0.5, 0.0]])
    assert matched_iou([a, b], [c, d]) == pytest.approx(5 / 12)


def test_per_class_iou():
    structure = [Instance(17, "cat", 0.9, s1), Instance(1, "person", 0.8, s2)]
    output = [Instance(17, "cat", 0.7, o1)]
    assert per_class_iou(structure, output, S) == {"cat": 0.5, "person": 0.0}
    # a class only in the output counts too (0)
    assert per_class_iou(structure, [Instance(18, "dog", 0.9, s1)], S) == {"cat": 0.0, "dog": 0.0, "person": 0.0}
    # several instances of one class: union per class (s1 + s2 vs s1 -> 25 / 50)
    two_cats = [Instance(17, "cat", 0.9, s1), Instance(17, "cat", 0.9, s2)]
    assert per_class_iou(two_cats, [Instance(17, "cat", 0.9, s1)], S) == {"cat": 0.5}


def test_layout_scores_and_exclusions():
    structure = [Instance(17, "cat", 0.9, s1), Instance(1, "person", 0.8, s2)]
    output = [Instance(18, "dog", 0.7, o1)]
    r = layout_scores(structure, output, S)
    assert not r.excluded and r.exclusion_reason is None
    assert r.iou == pytest.approx(1 / 3) and r.matched_iou == pytest.approx(0.25)
    assert (r.n_structure, r.n_output) == (2, 1)
    assert r.per_class == {"cat": 0.0, "dog": 0.0, "person": 0.0}
    # nothing in the output: IoU 0, not excluded
    r0 = layout_scores(structure, [], S)
    assert (r0.excluded, r0.iou, r0.matched_iou, r0.n_output) == (False, 0.0, 0.0, 0)
    # nothing in the structure image: excluded, no number
    rx = layout_scores([], output, S)
    assert rx.excluded and rx.exclusion_reason == NO_STRUCTURE_DETECTION and rx.iou is None and rx.matched_iou is None
    assert rx.to_dict()["n_output"] == 1
    # a structure detection whose binarised mask is empty counts as no detection
    ry = layout_scores([Instance(17, "cat", 0.9, np.zeros(S, bool))], output, S)
    assert ry.excluded


def test_instance_validates_mask():
    with pytest.raises(ValueError, match="2-D boolean"):
        Instance(1, "person", 0.9, np.zeros(S, np.uint8))
