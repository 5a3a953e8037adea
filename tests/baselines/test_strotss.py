"""STROTSS (Kolkin et al., CVPR 2019): the pieces with hand-computed values, then the method end to end at
smoke settings with random VGG16 weights saved to a file and loaded back through the local-file path."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from baselines import strotss_losses as L
from baselines.strotss import Strotss, StrotssConfig, long_side_size, scale_long_sides, strotss_config
from baselines.strotss_vgg import HYPERCOLUMN_CHANNELS, StrotssVGG, _random_init, load_strotss_vgg
from splice.core.errors import ConfigError, WeightsError
from splice.core.imageio import sha256_file
from splice.core.method import Pair, RunSettings
from splice.core.registry import methods


# -- Laplacian pyramid ----------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 3, 32, 48), (1, 3, 37, 23), (1, 3, 5, 7)])
def test_laplacian_pyramid_reconstructs_the_image(shape):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    pyramid = L.make_laplacian_pyramid(x, 5)
    assert len(pyramid) == 6
    assert pyramid[0].shape == x.shape
    assert pyramid[1].shape[-2:] == (max(shape[2] // 2, 1), max(shape[3] // 2, 1))
    torch.testing.assert_close(L.fold_laplacian_pyramid(pyramid), x, atol=1e-5, rtol=0)


def test_laplacian_of_a_constant_image_is_zero():
    x = torch.full((1, 3, 16, 16), 0.3)
    assert L.laplacian(x).abs().max() < 1e-6


def test_pyramid_resamples_with_aligned_corners():
    """The official pyr_lap.py uses F.upsample_bilinear (align_corners=True): 4 px down to 2 keeps the two end
    pixels, back up to 4 puts them at 0, 1/3, 2/3, 1 of the way, and the band is what is left."""
    x = torch.tensor([[[[0.0, 1.0, 2.0, 4.0]]]])  # 1 x 4
    band, residual = L.make_laplacian_pyramid(x, 1)
    torch.testing.assert_close(residual, torch.tensor([[[[0.0, 4.0]]]]))
    torch.testing.assert_close(band, torch.tensor([[[[0.0, 1 - 4 / 3, 2 - 8 / 3, 0.0]]]]))
    torch.testing.assert_close(L.fold_laplacian_pyramid([band, residual]), x)


# -- distances and losses ---------------------------------------------------------------------------
def test_relaxed_emd_of_a_cost_matrix():
    cost = torch.tensor([[1.0, 2.0], [3.0, 0.5], [4.0, 5.0]])
    # row minima 1, 0.5, 4 -> mean 11/6; column minima 1, 0.5 -> mean 0.75; REMD = max
    assert L.relaxed_emd(cost).item() == pytest.approx(11 / 6)


def test_style_remd_on_tiny_point_sets():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([[1.0, 0.0], [2.0, 0.0], [1.0, 1.0]])
    d = 1 - 1 / math.sqrt(2)
    torch.testing.assert_close(L.cosine_distances(x, y), torch.tensor([[0.0, 0.0, d], [1.0, 1.0, d]]))
    # x -> y: minima 0 and d (mean d/2); y -> x: minima 0, 0, d (mean d/3)
    assert L.style_remd(x, y).item() == pytest.approx(d / 2, abs=1e-6)
    assert L.style_remd(x, x).item() == pytest.approx(0.0, abs=1e-6)


def test_euclidean_distances_are_scaled_by_dimension_and_clamped():
    x = torch.tensor([[0.0, 0.0, 0.0]])
    y = torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    # sqrt(9 / 3) and sqrt(1e-5 / 3) (squared distances are clamped to >= 1e-5)
    torch.testing.assert_close(L.euclidean_distances(x, y), torch.tensor([[math.sqrt(3.0), math.sqrt(1e-5 / 3)]]))


def test_moment_loss_hand_computed():
    x = torch.tensor([[0.0], [2.0]])  # mean 1, variance 1
    y = torch.tensor([[1.0], [1.0]])  # mean 1, variance 0
    assert L.moment_loss(x, y).item() == pytest.approx(1.0)
    x2 = torch.tensor([[1.0, 0.0], [3.0, 0.0]])  # means (2, 0); covariance [[1, 0], [0, 0]]
    y2 = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    # |mean diff| averaged over 2 dims = 1; |cov diff| averaged over 4 entries = 0.25
    assert L.moment_loss(x2, y2).item() == pytest.approx(1.25)
    assert L.moment_loss(x2, L.feature_moments(y2)).item() == pytest.approx(1.25)


def test_self_similarity_loss_ignores_feature_scale_and_sees_layout():
    g = torch.Generator().manual_seed(0)
    c = torch.rand(16, 8, generator=g) + 0.1
    assert L.self_similarity_loss(c, c).item() == pytest.approx(0.0, abs=1e-6)
    assert L.self_similarity_loss(3.0 * c, c).item() == pytest.approx(0.0, abs=1e-5)  # cosine: scale-free
    assert L.self_similarity_loss(c[torch.randperm(16, generator=g)], c).item() > 0.05


def test_palette_uses_the_decorrelated_colour_basis():
    basis = torch.tensor(L.COLOUR_BASIS)
    # the first row is the (normalised) luma direction
    torch.testing.assert_close(L.to_colour_basis(torch.ones(1, 3)), (torch.ones(1, 3) @ basis.t()))
    assert L.to_colour_basis(torch.ones(1, 3))[0, 0].item() == pytest.approx(3 * 0.57735, abs=1e-5)
    same = torch.rand(5, 3, generator=torch.Generator().manual_seed(1))
    # identical palettes: cosine 0 plus the clamped Euclidean floor sqrt(1e-5 / 3)
    assert L.palette_remd(same, same).item() == pytest.approx(math.sqrt(1e-5 / 3), abs=1e-5)


# -- sampling ----------------------------------------------------------------------------------------
def test_hypercolumn_sampling_bilinear_nearest_and_halving():
    img = torch.arange(16.0).view(1, 1, 4, 4)  # value = 4 * row + col
    half = torch.arange(4.0).view(1, 1, 2, 2) * 10  # value = 10 * (2 * row + col)
    rows, cols = np.array([1.0, 1.5, 3.0]), np.array([2.0, 0.5, 3.0])
    out = L.sample_hypercolumns([img, half], rows, cols)
    assert out.shape == (3, 2)
    torch.testing.assert_close(out[:, 0], torch.tensor([6.0, 6.5, 15.0]))
    # halved coordinates (0.5, 1), (0.75, 0.25), (1.5, 1.5 -> clamped neighbours)
    torch.testing.assert_close(out[:, 1], torch.tensor([20.0, 17.5, 30.0]))
    nearest = L.sample_hypercolumns([img, half], np.array([3.0]), np.array([1.0]), bilinear=False)
    torch.testing.assert_close(nearest, torch.tensor([[13.0, 20.0]]))  # half: (1.5, 0.5) -> (1, 0)


def test_grid_strides_and_sampler_counts():
    # 384 * 512 // 128**2 = 12 -> stride floor(sqrt 12) = 3 along rows, ceil = 4 along columns
    assert L.grid_strides(384, 512) == (3, 4)
    assert L.grid_strides(192, 256) == (1, 2) and L.grid_strides(96, 128) == (1, 1)
    sampler = L.StrotssSampler(0)
    sampler.start_scale(384, 512)
    assert len(sampler.rows) == len(sampler.cols) == math.ceil(384 / 3) * (512 // 4)
    assert set(np.diff(np.unique(sampler.rows))) == {3} and set(np.diff(np.unique(sampler.cols))) == {4}
    r, c = sampler.step(0, 1024)
    assert len(r) == len(c) == 1024
    sampler.start_scale(40, 50)  # small images: every pixel is a grid point
    assert len(sampler.rows) == 2000
    r, c = sampler.style_pixels(10, 10, 1000, 2)  # two draws of all 100 pixels, each a permutation
    assert len(r) == 200 and len(set(zip(r[:100], c[:100]))) == 100 and len(set(zip(r[100:], c[100:]))) == 100


def test_scales_and_long_side():
    assert scale_long_sides(StrotssConfig()) == [64, 128, 256, 512]
    assert scale_long_sides(StrotssConfig(), long_side=400) == [50, 100, 200, 400]
    assert long_side_size((1000, 600), 512) == (512, 307)
    assert long_side_size((600, 1000), 512) == (307, 512)
    assert long_side_size((512, 512), 512) == (512, 512)
    assert long_side_size((498, 374), 512) == (511, 384)  # the official float truncation


def test_vgg_hypercolumn_width():
    feats = StrotssVGG()(torch.zeros(1, 3, 32, 32))
    assert len(feats) == 10
    assert sum(f.shape[1] for f in feats) == HYPERCOLUMN_CHANNELS == 2179
    assert [f.shape[-1] for f in feats] == [32, 32, 32, 16, 16, 8, 8, 8, 4, 2]


# -- options and weights -------------------------------------------------------------------------------
def test_paper_options_are_the_official_ones():
    cfg = StrotssConfig()
    assert (cfg.long_side, cfg.scales, cfg.iters_per_scale, cfg.lr, cfg.lr_last) == (512, 4, 250, 2e-3, 1e-3)
    assert (cfg.content_weight, cfg.n_locations, cfg.style_samples, cfg.style_draws) == (1.0, 1024, 1000, 5)
    assert strotss_config(RunSettings(preset="paper")) == cfg


def test_options_are_typed_and_checked():
    options = {"iters_per_scale": "3", "lr": "0.01"}
    cfg = strotss_config(RunSettings(preset="smoke", options=options))
    assert cfg.iters_per_scale == 3 and cfg.lr == 0.01 and cfg.long_side == 64
    assert strotss_config(RunSettings(preset="fast")) == StrotssConfig()  # no fast preset: paper
    with pytest.raises(ConfigError, match="strotss: unknown option 'iters'; did you mean iters_per_scale\\?"):
        strotss_config(RunSettings(options={"iters": 3}))
    with pytest.raises(ConfigError, match="strotss.iters_per_scale: 'many' is not an integer"):
        strotss_config(RunSettings(options={"iters_per_scale": "many"}))


@pytest.fixture
def no_cached_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("SPLICE_WEIGHTS_DIR", str(tmp_path / "weights"))
    return tmp_path


def test_missing_tagged_weights_is_one_line_naming_file_and_place(no_cached_weights, tiny_pair):
    pair = Pair("p", *tiny_pair)
    with pytest.raises(WeightsError) as err:
        Strotss().run(pair, RunSettings(preset="smoke"))
    msg = str(err.value)
    assert "\n" not in msg
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in msg
    assert str(no_cached_weights / "torch" / "hub" / "checkpoints" / "vgg16-397923af.pth") in msg
    assert str(no_cached_weights / "weights") in msg
    req = Strotss().requirements(RunSettings())[0]
    assert not req.ready and req.path.endswith("vgg16-397923af.pth")
    with pytest.raises(WeightsError, match="VGG16 weight file not found: .*nope.pth"):
        load_strotss_vgg(str(no_cached_weights / "nope.pth"))


def test_tagged_weights_are_found_in_the_suite_weights_folder(no_cached_weights, vgg_file):
    target = no_cached_weights / "weights" / "vgg16-397923af.pth"
    target.parent.mkdir(parents=True)
    target.symlink_to(vgg_file)
    assert Strotss().requirements(RunSettings())[0].ready
    _, identity = load_strotss_vgg(None)
    assert identity["spec"] == "IMAGENET1K_V1" and identity["path"] == str(target) and not identity["random"]


def test_random_fallback_is_marked(no_cached_weights):
    _, identity = load_strotss_vgg(None, allow_random=True)
    assert identity["random"] and identity["fallback_from"] == "IMAGENET1K_V1"


def test_wrong_checkpoint_is_a_weights_error(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(3, 3)}, bad)
    with pytest.raises(WeightsError, match="does not look like a VGG16 checkpoint"):
        load_strotss_vgg(str(bad))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot be read"):
        load_strotss_vgg(str(tmp_path / "junk.pth"))


# -- end to end --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """Random VGG16 weights in torchvision's key layout (``features.N.weight``), saved to a file."""
    model = StrotssVGG()
    _random_init(model.features)
    path = tmp_path_factory.mktemp("vgg") / "vgg16_random.pth"
    torch.save({f"features.{k}": v for k, v in model.features.state_dict().items()}, path)
    return path


@pytest.fixture(scope="module")
def e2e(tmp_path_factory, vgg_file):
    from tests.support.images import make_image

    folder = tmp_path_factory.mktemp("pair")
    make_image(96, 80, seed=1).save(folder / "s.png")
    make_image(72, 72, seed=2).save(folder / "a.png")
    pair = Pair("tiny", folder / "s.png", folder / "a.png")
    method = methods.create("strotss")
    first = method.run(pair, RunSettings(preset="smoke", seed=0, weights=str(vgg_file)))
    again = method.run(pair, RunSettings(preset="smoke", seed=0, weights=str(vgg_file)))
    return pair, first, again


def test_end_to_end_output_and_geometry(e2e, vgg_file):
    pair, result, _ = e2e
    # structure 96x80 -> long side 64 -> 64 x int(80 * 64 / 96) = 64 x 53
    assert result.image.mode == "RGB" and result.image.size == (64, 53)
    expected = {"kind": "resize", "source": [96, 80], "box": [0, 0, 96, 80], "output": [64, 53]}
    assert result.geometry.to_dict() == expected
    info = result.info
    assert info["seed"] == 0 and info["random_weights"] is False
    assert info["weights"]["path"] == str(vgg_file) and info["weights"]["sha256"] == sha256_file(vgg_file)
    assert info["inputs"]["structure"]["size"] == [96, 80]
    assert [s["long_side"] for s in info["scales"]] == [32, 64]
    assert [s["size"] for s in info["scales"]] == [[26, 32], [53, 64]]  # every scale from the original
    assert [s["content_weight"] for s in info["scales"]] == [16.0, 8.0]
    assert [s["lr"] for s in info["scales"]] == [2e-3, 1e-3]
    assert info["scales"][0]["loss"] < info["scales"][0]["first_loss"]  # RMSprop lowers the objective


def test_end_to_end_is_deterministic_under_a_seed(e2e, vgg_file):
    pair, first, again = e2e
    assert np.array_equal(np.asarray(first.image), np.asarray(again.image))
    drop = ("seconds",)
    assert [{k: v for k, v in s.items() if k not in drop} for s in first.info["scales"]] == [
        {k: v for k, v in s.items() if k not in drop} for s in again.info["scales"]
    ]
    # another seed samples other locations: a different result (one short scale keeps this cheap)
    short = {"scales": 1, "iters_per_scale": 2}
    outputs = [
        Strotss().run(pair, RunSettings(preset="smoke", seed=seed, weights=str(vgg_file), options=short)).image
        for seed in (0, 1)
    ]
    assert not np.array_equal(np.asarray(outputs[0]), np.asarray(outputs[1]))


def test_max_side_caps_resolution_and_config_records_it(tiny_pair):
    settings = RunSettings(preset="smoke", weights="random", max_side=40, options={"iters_per_scale": 1, "scales": 1})
    result = Strotss().run(Pair("p", *tiny_pair), settings)
    # short side 80 capped to 40 -> long side int(40 * 96 / 80) = 48
    assert result.image.size == (48, 40) and result.info["random_weights"] is True
    assert Strotss.supports_max_side
    cfg = Strotss().config(settings)
    assert cfg["max_side"] == 40 and cfg["weights"] == "random" and cfg["iters_per_scale"] == 1


def test_initialisation_carries_the_appearance_mean_colour(tiny_pair):
    """With no steps the output is the initialisation: the structure's finest Laplacian band (zero mean) plus
    the appearance's mean colour, in raw RGB, clamped and rounded."""
    settings = RunSettings(preset="smoke", weights="random", options={"iters_per_scale": 0})
    result = Strotss().run(Pair("p", *tiny_pair), settings)
    appearance = np.asarray(Image.open(tiny_pair[1]).convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(0)
    output = np.asarray(result.image, dtype=np.float64).reshape(-1, 3).mean(0)
    assert np.abs(output - appearance).max() < 4.0


@pytest.mark.paper_data
def test_output_size_matches_the_authors_strotss_outputs(paper_data):
    """The Splice authors' STROTSS outputs (../shared/data/paper/afhq/*/strotss/out.png) have the size the
    official resize predicts for their structure images (long side 512), and reach 0 and 255."""
    outputs = sorted(paper_data.glob("afhq/*/strotss/out.png"))
    if not outputs:
        pytest.skip("no STROTSS outputs in ../shared/data/paper")
    for out in outputs:
        structure = next((out.parent.parent / "A").iterdir())
        with Image.open(structure) as s, Image.open(out) as o:
            assert long_side_size(s.size, StrotssConfig().long_side) == o.size
            arr = np.asarray(o.convert("RGB"))
        assert arr.min() == 0 and arr.max() == 255
