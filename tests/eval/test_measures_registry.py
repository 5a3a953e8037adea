"""The metric registry: declarations, readiness, offline errors, cache keys, and features computed once per image."""

from __future__ import annotations

import importlib
import time

import pytest
import torch

import eval.measures as measures
from eval.measures import APPEARANCE, STRUCTURE, FeatureStore, create, describe_all, score_job
from splice.core.errors import ConfigError, UserError, WeightsError
from tests.support.images import make_image

MODEL_MEASURES = ("lpips_vgg", "lpips_alex", "dists", "clip", "dino", "dinov2", "gram")


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No weights anywhere, no hub: an empty weights dir, torch hub cache and Hugging Face cache."""
    from tests.support.measures import offline

    return offline(tmp_path, monkeypatch)


def test_every_measure_declares_what_it_compares_and_its_direction():
    want = {"lpips_vgg": (STRUCTURE, False), "lpips_alex": (STRUCTURE, False), "dists": (STRUCTURE, False),
            "clip": (APPEARANCE, True), "dino": (APPEARANCE, True), "dinov2": (APPEARANCE, True),
            "gram": (APPEARANCE, False), "lab_emd": (APPEARANCE, False)}  # fmt: skip
    assert measures.names() == list(want)
    for name, (compares, higher) in want.items():
        cls = measures.measure_class(name)
        assert (cls.name, cls.compares, cls.higher_is_better) == (name, compares, higher)
        assert cls.label and cls.reference and cls.protocol_version == "1" and cls.packages


def test_unknown_names_and_options_are_one_line_errors():
    with pytest.raises(ConfigError, match="did you mean lpips_vgg"):
        measures.measure_class("lpips_vg")
    with pytest.raises(ConfigError, match="lpips_vgg: unknown option 'max_sid'"):
        create("lpips_vgg", {"max_sid": 3})
    with pytest.raises(ConfigError, match="not an integer"):
        create("gram", {"max_side": "big"})
    assert create("gram", {"max_side": "none"}).opts.max_side is None
    assert create("lpips_alex", preset="smoke").opts.max_side == 128
    assert create("lpips_alex", preset="fast").opts.max_side == 512  # a preset it lacks runs paper


def test_torchvision_file_names_are_torchvisions():
    from torchvision.models import AlexNet_Weights, VGG16_Weights, VGG19_Weights

    from eval.measures.weights import TORCHVISION_ARCHS

    assert TORCHVISION_ARCHS["vgg16"][0] == VGG16_Weights.IMAGENET1K_V1.url
    assert TORCHVISION_ARCHS["vgg19"][0] == VGG19_Weights.IMAGENET1K_V1.url
    assert TORCHVISION_ARCHS["alexnet"][0] == AlexNet_Weights.IMAGENET1K_V1.url


def test_readiness_lists_what_is_missing_and_how_to_get_it(offline):
    rows = {d["name"]: d for d in describe_all()}
    assert rows["lab_emd"]["ready"] is True
    for name in MODEL_MEASURES:
        assert rows[name]["ready"] is False, name
        missing = [n for n in rows[name]["needs"] if not n["ready"]]
        assert missing and all(n["how"] for n in missing)
    vgg = next(n for n in rows["lpips_vgg"]["needs"] if n["name"].startswith("VGG16"))
    assert "vgg16-397923af.pth" in vgg["how"] and str(offline / "weights") in vgg["how"]
    clip = next(n for n in rows["clip"]["needs"] if "open_clip" in n["name"] and not n["ready"])
    assert "open_clip-ViT-B-32-quickgelu-openai.safetensors" in clip["how"]
    assert "dino_deitsmall16_pretrain.pth" in " ".join(n["how"] for n in rows["dino"]["needs"])
    assert rows["dists"]["higher_is_better"] is False and rows["clip"]["compares"] == APPEARANCE
    assert all(d["ready"] for d in describe_all(allow_random=True))


@pytest.mark.parametrize("name", MODEL_MEASURES)
def test_offline_without_weights_is_one_line_in_well_under_a_second(offline, name):
    m = create(name)
    for module in m.packages.values():  # importing a library once is not what is timed
        importlib.import_module(module)
    t0 = time.perf_counter()
    with pytest.raises(WeightsError) as e:
        m.load()
    assert time.perf_counter() - t0 < 1.0
    msg = str(e.value)
    assert "\n" not in msg and "random" in msg and ("download" in msg or "put" in msg)


def test_a_tagged_file_in_the_weights_dir_is_found(offline):
    """torchvision's AlexNet file under its own name in $SPLICE_WEIGHTS_DIR: ready, loaded, hashed."""
    from eval.measures.weights import torchvision_features

    (offline / "weights").mkdir()
    torch.manual_seed(5)
    features = torchvision_features("alexnet")
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()},
               offline / "weights" / "alexnet-owt-7be5be79.pth")  # fmt: skip
    m = create("lpips_alex")
    assert next(d for d in describe_all(["lpips_alex"]))["ready"] is True
    m.load()
    trunk = m.record_base()["weights"]["trunk"]
    assert trunk["source"] == "tag" and trunk["sha256"] and not m.random_weights
    assert torch.equal(m.model.net.slice1[0].weight, features[0].weight)


def test_a_file_that_does_not_fit_is_one_line(tmp_path):
    path = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(3, 3, 3, 3)}, path)
    with pytest.raises(WeightsError, match="does not fit AlexNet ImageNet weights: features.0.weight is shape"):
        create("lpips_alex", {"weights": str(path)}).load()
    with pytest.raises(WeightsError, match="file not found"):
        create("gram", {"weights": str(tmp_path / "absent.pth")}).load()


def test_allow_random_falls_back_and_says_so(offline, caplog):
    m = create("gram", {"max_side": 32}, allow_random=True)
    m.load()
    rec = m.record_base()
    assert rec["random_weights"] is True and rec["weights"]["vgg19"]["fallback_from"] == "IMAGENET1K_V1"
    assert "RANDOM weights" in caplog.text


def test_cache_key_follows_options_weights_and_protocol():
    a = create("gram", {"weights": "random", "max_side": 64})
    assert a.cache_key() == create("gram", {"weights": "random", "max_side": 64}).cache_key()
    assert a.cache_key() != create("gram", {"weights": "random", "max_side": 32}).cache_key()
    assert a.settings_hash() == a.cache_key()[:16] == a.record_base()["settings_hash"]
    ident = a.identity()
    assert ident["weights"]["vgg19"] == {"spec": "random", "random": True, "seed": 0}
    assert ident["versions"]["torchvision"] and ident["protocol_version"] == "1"


def _jobs():
    structure = make_image(64, 56, seed=20)
    appearance = make_image(48, 64, seed=21)
    outputs = [make_image(64, 56, seed=30 + i) for i in range(3)]
    return structure, appearance, outputs


def _measures(store):
    options = {"lpips_alex": {"weights": "random"}, "gram": {"weights": "random"},
               "dino": {"weights": "random", "image_size": 32}}  # fmt: skip
    return measures.create_all(["lpips_alex", "gram", "dino", "lab_emd"], options, store=store)


def test_features_are_computed_once_per_image_per_model(tmp_path):
    structure, appearance, outputs = _jobs()
    store = FeatureStore(tmp_path / "cache")
    ms = _measures(store)
    first = [score_job(ms, structure, appearance, out) for out in outputs]
    assert {m.name: m.model_calls for m in ms} == {"lpips_alex": 4, "gram": 4, "dino": 4, "lab_emd": 4}
    again = [score_job(ms, structure, appearance, out) for out in outputs]
    assert again == first and {m.model_calls for m in ms} == {4}  # a second pass: all from memory
    # a new process (new store, same folder): small features come from disk, bit for bit the same values
    store2 = FeatureStore(tmp_path / "cache")
    ms2 = _measures(store2)
    third = [score_job(ms2, structure, appearance, out) for out in outputs]
    calls = {m.name: m.model_calls for m in ms2}
    assert calls["gram"] == calls["dino"] == 0
    assert calls["lpips_alex"] == calls["lab_emd"] == 4  # memory only (big or cheap features)
    assert [{k: v for k, v in t.items()} for t in third] == first
    assert store2.stats()["disk"] and list((tmp_path / "cache" / "measures").iterdir())


def test_score_job_aligns_the_structure_image_once_and_by_the_geometry():
    from eval.align import align_structure
    from splice.core.geometry import Geometry

    _, appearance, _ = _jobs()
    structure, output = make_image(96, 80, seed=41), make_image(64, 64, seed=40)
    geometry = Geometry.center_crop((96, 80), (64, 64))
    ms = measures.create_all(["lpips_alex", "lab_emd"], {"lpips_alex": {"weights": "random"}})
    values = score_job(ms, structure, appearance, output, geometry)
    aligned = align_structure(structure, output.size, geometry)[0]
    assert values["lpips_alex"] == ms[0].score(output, aligned)
    assert values["lab_emd"] == ms[1].score(output, appearance)
    with pytest.raises(ValueError, match="align the structure image"):
        ms[0].score(output, structure)


def test_the_memory_tier_is_bounded():
    store = FeatureStore(memory_mb=0.5)  # ~one 64 px Lab image (64*56*3*8 bytes = 86 kB) fits many times
    m = create("lab_emd", store=store)
    big = [make_image(256, 256, seed=i) for i in range(3)]  # 1.5 MB each: only the latest stays
    for im in big:
        m.features(im)
    m.features(big[0])
    assert m.model_calls == 4 and store.stats()["memory_mb"] < 2


def test_a_missing_package_is_a_readiness_problem(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lpips" else real(name, *a))
    row = describe_all(["lpips_vgg"])[0]
    assert row["ready"] is False and "pip install lpips" in row["needs"][0]["how"]
    with pytest.raises(UserError, match="metric lpips_vgg: Python package lpips is missing"):
        create("lpips_vgg").load()


def test_a_tag_is_fetched_only_through_its_library_and_only_when_it_arrives(tmp_path):
    from eval.measures.weights import WeightsSource

    got = tmp_path / "fetched.pth"
    got.write_bytes(b"x")
    src = WeightsSource("model weights", "tag", "tag", None, how="put it somewhere", fetch=lambda: got)
    assert src.require().path == got
    nothing = WeightsSource("model weights", "tag", "tag", None, how="put it somewhere", fetch=lambda: None)
    with pytest.raises(WeightsError, match="model weights 'tag' not found"):
        nothing.require()
    assert nothing.require(allow_random=True).random
