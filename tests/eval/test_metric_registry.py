"""One metric registry: the layout IoU, panoptic mIoU, ViT distances and every measure of eval.measures are listed
once (eval.scorers.SPECS), declare what they compare and their direction, are scored by `score_run` with
`--metrics all`, and reach the aggregate columns and the tables with no per-metric code."""

from __future__ import annotations

import dataclasses

import pytest

import eval.measures as measures
from eval.aggregate import COLUMNS, load_results
from eval.cache import FeatureCache
from eval.layout import CachedDetector, CachedSegmenter
from eval.metrics import METRICS, scored_metrics
from eval.scorers import (
    APPEARANCE,
    FAMILIES,
    SPECS,
    STRUCTURE,
    check_metrics,
    describe,
    metric_overrides,
    records_of,
)
from eval.scoring import ScoreOptions, score_run, summary_lines
from eval.tables import metric_table, render
from eval.vit_metrics import CachedViT
from splice.core.errors import ConfigError
from splice.core.geometry import Geometry
from tests.support.fakes import ColourDetector, ColourSegmenter, TinyExtractor
from tests.support.images import make_image
from tests.support.measures import TINY_OPTIONS, offline, register_tiny_clip
from tests.support.store import add_job

BUILTIN = ["iou", "panoptic", "vit"]


def test_one_list_of_metrics_each_declaring_what_it_compares_and_its_direction():
    assert list(SPECS) == BUILTIN + measures.names()
    assert FAMILIES == ("iou", "vit", *measures.names())
    for name in measures.names():
        cls, spec = measures.measure_class(name), SPECS[name]
        (number,) = spec.numbers
        assert (spec.family, spec.reads, spec.protocol_version) == (name, (cls.compares, "output"), "1")
        assert (number.key, number.higher_is_better, number.compares, number.table) == (
            "value",
            cls.higher_is_better,
            cls.compares,
            name,
        )
        assert spec.model == cls.default_model and spec.model
    assert SPECS["vit"].values == {"structure_distance": False, "appearance_distance": False, "appearance_cosine": True}
    assert SPECS["vit"].compares == (STRUCTURE, APPEARANCE) and SPECS["iou"].compares == (STRUCTURE,)
    assert all(s.protocol_version == "2" for s in map(SPECS.get, BUILTIN))
    # the tables and the aggregate columns follow the registry: every number has a table metric and a column
    for spec in SPECS.values():
        for n in spec.numbers:
            assert n.column in COLUMNS and METRICS[n.table].higher_is_better == n.higher_is_better
        assert f"{spec.name}_scored" in COLUMNS
    assert scored_metrics() == ["iou", "matched_iou", "pixel_accuracy", "structure", "appearance", "cosine",
                                *measures.names()]  # fmt: skip
    assert METRICS["iou"].by_segmenter and set(METRICS["iou"].sources) == {"maskrcnn", "panoptic"}


def test_metrics_option_takes_every_name_and_all():
    assert check_metrics(["all"]) == FAMILIES
    assert check_metrics(["panoptic", "clip", "iou"]) == ("panoptic", "clip", "iou")
    assert records_of(["iou", "clip"]) == ["iou", "panoptic", "clip"]
    with pytest.raises(ConfigError, match="did you mean lpips_vgg"):
        check_metrics(["lpips_vg"])
    o = ScoreOptions(metrics=("all",))
    assert o.records_for("demo")[:2] == ["iou", "vit"] and o.records_for("mountains")[0] == "panoptic"
    assert ScoreOptions(metrics=("panoptic", "iou")).records_for("demo") == ["panoptic", "iou"]


def test_metric_args_reach_the_selected_measures():
    got = metric_overrides(["max_side=64", "clip.weights=/w/c.safetensors"], ["lpips_vgg", "gram", "clip", "iou"])
    assert got == {"lpips_vgg": {"max_side": "64"}, "gram": {"max_side": "64"}, "clip": {"weights": "/w/c.safetensors"}}
    with pytest.raises(ConfigError, match="'clp' is not a metric; see `splice metrics`"):
        metric_overrides(["clp.weights=x"], ["clip"])
    with pytest.raises(ConfigError, match="clip has no option 'wieghts'"):
        metric_overrides(["clip.wieghts=x"], ["clip"])
    with pytest.raises(ConfigError, match=r"no selected metric \(clip\) has an option 'max_side'"):
        metric_overrides(["max_side=3"], ["clip", "iou"])
    with pytest.raises(ConfigError, match="which --metrics does not select"):
        ScoreOptions(metrics=("iou",), metric_args={"clip": {"weights": "random"}})


def test_readiness_of_every_metric_without_loading(tmp_path, monkeypatch):
    """Offline, with no weights: every model metric says what is missing and how to get it; with random weights
    allowed all are ready; the cache key is the scorer's settings_hash."""
    offline(tmp_path, monkeypatch)
    opts = ScoreOptions(metrics=("all", "panoptic"))
    rows = {n: describe(n, opts) for n in SPECS}
    assert [n for n, r in rows.items() if r["ready"]] == ["lab_emd"]
    iou = rows["iou"]
    assert iou["numbers"][0] == {"key": "iou", "table": "iou", "label": "layout IoU", "higher_is_better": True,
                                 "compares": STRUCTURE}  # fmt: skip
    assert "maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth" in iou["problems"][0] and iou["protocol_version"] == "2"
    assert "dino_vitbase8_pretrain.pth" in rows["vit"]["problems"][0]
    assert rows["clip"]["options"][0]["name"] == "model" and rows["clip"]["compares"] == ["the appearance image"]
    allowed = dataclasses.replace(opts, allow_random_weights=True)
    assert all(describe(n, allowed)["ready"] for n in ("iou", "vit", "lpips_alex", "gram", "lab_emd"))
    keyed = describe("lab_emd", allowed, key=True, cache_root=tmp_path / "c")
    assert keyed["cache_key"] == measures.create("lab_emd").settings_hash()


def test_torchvision_detector_urls_are_torchvisions():
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_V2_Weights, MaskRCNN_ResNet50_FPN_Weights

    from eval.detector import TAG_URLS

    assert TAG_URLS["maskrcnn_resnet50_fpn_v2"]["COCO_V1"] == MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1.url
    assert TAG_URLS["maskrcnn_resnet50_fpn"]["COCO_V1"] == MaskRCNN_ResNet50_FPN_Weights.COCO_V1.url


def _run(tmp_path):
    """Two pairs; three methods; one output the same size as its structure image, one a centre crop."""
    root = tmp_path / "runs" / "r"
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i, p in enumerate(("p1", "p2")):
        make_image(96, 80, seed=10 + i).save(inputs / f"{p}_s.png")
        make_image(72, 88, seed=20 + i).save(inputs / f"{p}_a.png")
        for k, m in enumerate(("keep", "crop", "noise")):
            size = (64, 64) if m == "crop" else (96, 80)
            geo = Geometry.center_crop((96, 80), size) if m == "crop" else Geometry.identity((96, 80))
            add_job(
                root,
                "demo",
                p,
                m,
                structure=str(inputs / f"{p}_s.png"),
                appearance=str(inputs / f"{p}_a.png"),
                output=make_image(*size, seed=30 + 10 * k + i),
                geometry=geo.to_dict(),
            )
    return root


def _fakes(cache):
    return {"iou": CachedDetector(ColourDetector(), FeatureCache(cache, "masks", "colour")),
            "panoptic": CachedSegmenter(ColourSegmenter(), FeatureCache(cache, "labels", "colour")),
            "vit": CachedViT(TinyExtractor(), FeatureCache(cache, "vit", "tiny"))}  # fmt: skip


def test_score_all_then_again_makes_no_model_call_and_tables_pick_every_metric_up(tmp_path):
    pytest.importorskip("open_clip")
    register_tiny_clip(tmp_path / "clip")
    root = _run(tmp_path)
    opts = ScoreOptions(metrics=("all",), preset="smoke", metric_args=TINY_OPTIONS, cache_dir=str(tmp_path / "c"))
    first = score_run(root, opts, models=_fakes(tmp_path / "c"))
    assert first.ok and first.jobs == 6
    assert first.scored == {n: 6 for n in ("iou", "vit", *measures.names())} | {"panoptic": 0}
    # features once per image per model: 2 aligned structure images + 2 centre crops + 6 outputs for the structure
    # measures (the "keep" outputs are new images), 2 appearance images + 6 outputs for the appearance measures
    for name in measures.names():
        want = 10 if SPECS[name].reads[0] == STRUCTURE else 8
        assert first.model_calls[name] == want, name
    again = score_run(root, opts, models=_fakes(tmp_path / "c"))
    assert set(again.model_calls.values()) == {0} and set(again.scored.values()) == {0}
    assert again.skipped == {n: 6 for n in ("iou", "vit", *measures.names())} | {"panoptic": 0}
    lines = summary_lines(again, ["all"])
    assert "clip: 0 scored, 6 up to date, 0 model calls" in "\n".join(lines)
    assert not any(line.startswith("panoptic") for line in lines)  # a segmenter no data set used
    rec = (root / "outputs/demo/p1/crop/s0-abc123/metrics/lpips_alex.json").read_text()
    assert '"aligned": "geometry"' in rec and '"compares": "structure"' in rec and '"random_weights": true' in rec
    df = load_results(root)
    for name in measures.names():
        assert df[f"{name}_scored"].all() and df[name].notna().all(), name
        table = metric_table(df, name, n_boot=100)
        assert list(table["n_common"]) == [2, 2, 2]
        # the methods' weights are real here: only a measure with a (random) model taints its table
        assert table.attrs["random_weights"] == bool(df[f"{name}_random"].any()) == (name != "lab_emd"), name
        text = render(table, "md")
        header = next(line for line in text.splitlines() if line.startswith("| dataset"))
        assert ("↑" if SPECS[name].numbers[0].higher_is_better else "↓") in header
    gram = render(metric_table(df, "gram", n_boot=100), "md")
    assert "e-" in gram or "0.0" in gram  # three significant digits, whatever the magnitude
