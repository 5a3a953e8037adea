"""WCT2 (Yoo et al., ICCV 2019): Haar pooling and WCT with hand-computed values, the released checkpoints' key
layout, the public code's input geometry, and the method end to end at smoke settings with random weights
saved as the authors' file names and loaded back through the local-folder path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from baselines.wct2 import WCT2, _prepare, checkpoint_names, random_init, wct2_config, wct2_input_geometry
from baselines.wct2_model import (
    WaveDecoder,
    WaveEncoder,
    WavePool,
    WaveUnpool,
    colour,
    covariance,
    haar_filters,
    wct,
    wct2_transfer,
    whiten,
)
from splice.core.errors import ConfigError, WeightsError
from splice.core.imageio import sha256_file
from splice.core.method import Pair, RunSettings
from splice.core.registry import methods


# -- Haar wavelets ---------------------------------------------------------------------------------
def test_haar_pooling_of_a_known_block():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    ll, lh, hl, hh = (band.item() for band in WavePool(1)(x))
    assert ll == pytest.approx(5.0)  # (1 + 2 + 3 + 4) / 2
    assert lh == pytest.approx(1.0)  # (-1 + 2 - 3 + 4) / 2: left/right difference
    assert hl == pytest.approx(2.0)  # (-1 - 2 + 3 + 4) / 2: top/bottom difference
    assert hh == pytest.approx(0.0)  # (1 - 2 - 3 + 4) / 2
    torch.testing.assert_close(haar_filters()[0], torch.full((2, 2), 0.5))


def test_haar_unpooling_inverts_pooling():
    x = torch.rand(1, 4, 8, 6, generator=torch.Generator().manual_seed(0))
    bands = WavePool(4)(x)
    assert bands[0].shape == (1, 4, 4, 3)
    torch.testing.assert_close(WaveUnpool(4, "sum")(*bands), x, atol=1e-6, rtol=0)
    cat = WaveUnpool(4, "cat5")(*bands, original=x)
    assert cat.shape == (1, 20, 8, 6)
    torch.testing.assert_close(cat[:, -4:], x)


# -- whitening and colouring --------------------------------------------------------------------------
def test_whitening_gives_identity_covariance():
    g = torch.Generator().manual_seed(0)
    mix = torch.randn(4, 4, generator=g, dtype=torch.float64)
    feat = mix @ torch.randn(4, 500, generator=g, dtype=torch.float64) + 3.0
    white = whiten(feat, reg=0.0)
    mean, cov = covariance(white)
    torch.testing.assert_close(mean, torch.zeros(4, 1, dtype=torch.float64), atol=1e-10, rtol=0)
    torch.testing.assert_close(cov, torch.eye(4, dtype=torch.float64), atol=1e-10, rtol=0)


def test_colouring_gives_the_style_statistics():
    g = torch.Generator().manual_seed(1)
    content = torch.randn(3, 400, generator=g, dtype=torch.float64)
    style = torch.tensor([[2.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.5, 0.5]], dtype=torch.float64) @ torch.randn(
        3, 300, generator=g, dtype=torch.float64
    ) + torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.float64)
    out = colour(whiten(content, reg=0.0), style, reg=0.0)
    m_out, c_out = covariance(out)
    m_sty, c_sty = covariance(style)
    torch.testing.assert_close(m_out, m_sty)
    torch.testing.assert_close(c_out, c_sty)


def test_wct_of_a_map_with_itself_is_the_identity_and_alpha_blends():
    x = torch.rand(1, 8, 6, 5, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(wct(x, x), x, atol=1e-5, rtol=0)
    y = torch.rand(1, 8, 4, 4, generator=torch.Generator().manual_seed(3))
    full = wct(x, y)
    torch.testing.assert_close(wct(x, y, alpha=0.25), 0.25 * full + 0.75 * x)
    assert full.min() >= x.min() - 1e-6 and full.max() <= x.max() + 1e-6  # clamped to the content's range


# -- network and checkpoints ---------------------------------------------------------------------------
#: parameter names of the released wave_encoder_cat5_l4.pth / wave_decoder_cat5_l4.pth (the official model.py)
ENCODER_CONVS = "conv0 conv1_1 conv1_2 conv2_1 conv2_2 conv3_1 conv3_2 conv3_3 conv3_4 conv4_1".split()
DECODER_CONVS = "conv4_1 conv3_4_2 conv3_3 conv3_2 conv3_1 conv2_2_2 conv2_1 conv1_2_2 conv1_1".split()


def _keys(convs, pools):
    keys = {f"{c}.{p}" for c in convs for p in ("weight", "bias")}
    return keys | {f"{pool}.{band}.weight" for pool in pools for band in ("LL", "LH", "HL", "HH")}


def test_state_dict_keys_match_the_released_checkpoints():
    assert set(WaveEncoder("cat5").state_dict()) == _keys(ENCODER_CONVS, ["pool1", "pool2", "pool3"])
    recon = ["recon_block1", "recon_block2", "recon_block3"]
    assert set(WaveDecoder("cat5").state_dict()) == _keys(DECODER_CONVS, recon)
    assert WaveDecoder("cat5").state_dict()["conv3_4_2.weight"].shape == (256, 1280, 3, 3)
    assert "conv3_4.weight" in WaveDecoder("sum").state_dict()
    assert checkpoint_names() == ("wave_encoder_cat5_l4.pth", "wave_decoder_cat5_l4.pth")


def test_transfer_with_itself_reconstructs_like_the_plain_autoencoder():
    enc, dec = WaveEncoder("cat5"), WaveDecoder("cat5")
    random_init(enc, dec)
    x = torch.rand(1, 3, 32, 24, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        skips: dict = {}
        feats = x
        for level in (1, 2, 3, 4):
            feats = enc.encode(feats, skips, level)
        plain = dec(feats, skips)
        stylised = wct2_transfer(enc, dec, x, x)
    assert plain.shape == x.shape
    torch.testing.assert_close(stylised, plain, atol=1e-4, rtol=1e-4)


# -- geometry and options ---------------------------------------------------------------------------------
@pytest.mark.parametrize("size,short", [((96, 80), 64), ((100, 130), 72), ((512, 512), 512), ((333, 517), 512)])
def test_input_preparation_matches_torchvision_resize_and_centre_crop(size, short):
    from torchvision import transforms

    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")
    resized = transforms.Resize(short)(image)
    w, h = resized.size
    reference = transforms.CenterCrop((h // 16 * 16, w // 16 * 16))(resized)
    mine, geometry = _prepare(image, short, 16)
    assert mine.size == reference.size == tuple(geometry.output)
    assert np.array_equal(np.asarray(mine), np.asarray(reference))
    assert geometry.output[0] % 16 == 0 and geometry.output[1] % 16 == 0


def test_input_geometry_hand_computed():
    # 96x80, short side 64: resize to int(64 * 96 / 80) = 76 x 64, crop 76 -> 64 starting at round(6) = 6
    g = wct2_input_geometry((96, 80), 64)
    assert g.output == (64, 64) and g.source == (96, 80)
    assert g.box == (round(6 * 96 / 76), 0, round(70 * 96 / 76), 80)
    assert wct2_input_geometry((512, 512), 512).is_identity


def test_options_are_checked():
    assert wct2_config(RunSettings(preset="smoke")).image_size == 64
    assert wct2_config(RunSettings(options={"transfer_at": "skip,encoder"})).transfer_at == "encoder,skip"
    assert wct2_config(RunSettings(options={"alpha": "0.5"})).alpha == 0.5
    with pytest.raises(ConfigError, match="transfer_at='middle'"):
        wct2_config(RunSettings(options={"transfer_at": "middle"}))
    with pytest.raises(ConfigError, match="wct2: unknown option 'size'; did you mean image_size\\?"):
        wct2_config(RunSettings(options={"size": 3}))


# -- weights -----------------------------------------------------------------------------------------------
def test_missing_checkpoints_error_names_files_source_and_place(tmp_path, monkeypatch, tiny_pair):
    monkeypatch.setenv("SPLICE_WEIGHTS_DIR", str(tmp_path / "weights"))
    with pytest.raises(WeightsError) as err:
        WCT2().run(Pair("p", *tiny_pair), RunSettings(preset="smoke"))
    msg = str(err.value)
    assert "\n" not in msg
    folder = str(tmp_path / "weights" / "wct2")
    for part in ("wave_encoder_cat5_l4.pth", "wave_decoder_cat5_l4.pth", "https://github.com/clovaai/WCT2", folder):
        assert part in msg
    req = WCT2().requirements(RunSettings())[0]
    assert not req.ready and req.path == str(tmp_path / "weights" / "wct2")
    with pytest.raises(WeightsError, match="must be the folder"):
        WCT2().run(Pair("p", *tiny_pair), RunSettings(preset="smoke", weights=str(tiny_pair[0])))


def test_random_fallback_is_marked(tmp_path, tiny_pair):
    settings = RunSettings(preset="smoke", weights=str(tmp_path), allow_random_weights=True)
    result = WCT2().run(Pair("p", *tiny_pair), settings)
    assert result.info["random_weights"] is True and result.info["weights"]["fallback_from"] == str(tmp_path)


def test_a_checkpoint_of_another_model_is_refused(tmp_path, tiny_pair):
    torch.save({"conv0.weight": torch.zeros(3, 3, 1, 1)}, tmp_path / "wave_encoder_cat5_l4.pth")
    torch.save(WaveDecoder("cat5").state_dict(), tmp_path / "wave_decoder_cat5_l4.pth")
    with pytest.raises(WeightsError, match="is not a WCT2 encoder checkpoint.*conv0.bias is missing"):
        WCT2().run(Pair("p", *tiny_pair), RunSettings(preset="smoke", weights=str(tmp_path)))


# -- end to end --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory):
    """Random networks saved under the authors' file names, as the released state dicts are laid out."""
    folder = tmp_path_factory.mktemp("wct2")
    enc, dec = WaveEncoder("cat5"), WaveDecoder("cat5")
    random_init(enc, dec)
    torch.save(enc.state_dict(), folder / "wave_encoder_cat5_l4.pth")
    torch.save(dec.state_dict(), folder / "wave_decoder_cat5_l4.pth")
    return folder


def test_end_to_end_from_checkpoint_folder(checkpoint_dir, tiny_pair):
    pair = Pair("tiny", *tiny_pair)
    method = methods.create("wct2")
    assert method.requirements(RunSettings(weights=str(checkpoint_dir)))[0].ready
    result = method.run(pair, RunSettings(preset="smoke", seed=0, weights=str(checkpoint_dir)))
    assert result.image.mode == "RGB" and result.image.size == (64, 64)
    assert result.geometry.to_dict() == wct2_input_geometry((96, 80), 64).to_dict()
    assert result.geometry.source == (96, 80)
    info = result.info
    assert info["random_weights"] is False and info["seed"] == 0
    encoder_file = checkpoint_dir / "wave_encoder_cat5_l4.pth"
    assert info["weights"]["sha256"]["wave_encoder_cat5_l4.pth"] == sha256_file(encoder_file)
    assert info["style_size"] == [64, 64]
    assert np.asarray(result.image).std() > 1.0  # not a flat image
    again = method.run(pair, RunSettings(preset="smoke", seed=0, weights=str(checkpoint_dir)))
    assert np.array_equal(np.asarray(result.image), np.asarray(again.image))
    other = method.run(pair, RunSettings(preset="smoke", seed=0, weights=str(checkpoint_dir), options={"alpha": 0.0}))
    assert not np.array_equal(np.asarray(result.image), np.asarray(other.image))


def test_max_side_lowers_the_short_side(tiny_pair):
    result = WCT2().run(Pair("p", *tiny_pair), RunSettings(preset="paper", weights="random", max_side=48))
    # short side 48: 57 x 48 -> crop to 48 x 48
    assert result.image.size == (48, 48) and result.info["short_side"] == 48
    cfg = WCT2().config(RunSettings(weights="random", max_side=48))
    assert cfg["max_side"] == 48 and cfg["weights"] == "random" and cfg["transfer_at"] == "encoder,decoder,skip"
