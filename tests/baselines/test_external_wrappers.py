"""The shipped wrappers of official code as a user meets them: Eye-for-an-eye's sam_hq and SAM-HQ checkpoint checks
and its two presets, the diffusion model as an option (a hub id in the cache or a local folder standing in for the
id the official code hard-codes), per-data-set settings in the YAMLs, and their validation."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from baselines.external import (
    SPECS_DIR,
    CheckoutError,
    CrossImageAttention,
    ExternalMethod,
    ExternalSpec,
    EyeForAnEye,
    SwappingAutoencoder,
    hub_alias_cache,
    resolve_hub_model,
)
from splice.core.errors import ConfigError, WeightsError
from splice.core.method import NotApplicable, Pair, RunSettings

SD = "runwayml/stable-diffusion-v1-5"


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def fake_diffusers_folder(path):
    (path / "unet").mkdir(parents=True)
    (path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    (path / "unet" / "config.json").write_text(json.dumps({"sample_size": 64}))
    return path


def cached_model(cache, model_id: str, revision: str = "c" * 40):
    repo = cache / ("models--" + model_id.replace("/", "--"))
    fake_diffusers_folder(repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return repo / "snapshots" / revision


# -- Eye-for-an-eye ------------------------------------------------------------------------------------------
@pytest.fixture
def efae_checkout(tmp_path):
    repo = tmp_path / "eye_for_an_eye"
    repo.mkdir()
    for f in ("run.py", "config.py", "appearance_transfer_model_final.py"):
        (repo / f).write_text("")
    (repo / "sam_hq").mkdir()  # a gitlink without .gitmodules: an empty folder after a clone
    return repo


def test_eye_for_an_eye_needs_sam_hq_then_its_checkpoint_then_the_model(efae_checkout, hf_cache, tiny_pair):
    pair = Pair("p", *tiny_pair)
    m = EyeForAnEye()
    settings = RunSettings(device="cuda", options={"repo": str(efae_checkout)})
    with pytest.raises(CheckoutError) as e:
        m.run(pair, settings)
    msg = str(e.value)
    assert "\n" not in msg and f"{efae_checkout}/sam_hq/segment_anything/__init__.py is missing" in msg
    assert f"git clone https://github.com/SysCV/sam-hq {efae_checkout}/sam_hq" in msg and "sam_hq_vit_l.pth" in msg

    (efae_checkout / "sam_hq" / "segment_anything").mkdir()
    (efae_checkout / "sam_hq" / "segment_anything" / "__init__.py").write_text("")
    with pytest.raises(WeightsError) as e:  # the paper preset (the README's command) uses SAM-HQ masks
        m.run(pair, settings)
    assert f"missing {efae_checkout}/sam_hq_vit_l.pth" in str(e.value) and "config-defaults" in str(e.value)

    no_mask = RunSettings(device="cuda", preset="config-defaults", options={"repo": str(efae_checkout)})
    with pytest.raises(WeightsError) as e:  # without masks no SAM checkpoint is needed; the model is
        m.run(pair, no_mask)
    assert f"Stable Diffusion 1.5 ({SD}) not found" in str(e.value) and "model=" in str(e.value)
    names = [r.name for r in m.requirements(settings)]
    assert names[1:] == ["sam_hq/segment_anything/__init__.py in the checkout",
                         "SAM-HQ ViT-L checkpoint (sam_hq_vit_l.pth)", f"Stable Diffusion 1.5 ({SD})"]
    assert len(m.requirements(no_mask)) == 3  # no SAM-HQ checkpoint


def test_eye_for_an_eye_presets_are_the_readme_command_and_the_config_defaults():
    spec = ExternalSpec.load(SPECS_DIR / "eye-for-an-eye.yaml")
    paper = spec.resolve_options(RunSettings(preset="paper"))
    assert (paper["use_masked_adain"], paper["guidance_scale"], paper["mask_use"]) == (True, 2.5, True)
    defaults = spec.resolve_options(RunSettings(preset="config-defaults"))
    assert (defaults["use_masked_adain"], defaults["guidance_scale"], defaults["mask_use"]) == (True, 1.0, False)
    assert defaults["num_timesteps"] == 100 and defaults["sam_path"] == "sam_hq_vit_l.pth"
    for flag in ("--guidance_scale", "--mask_use", "--sam_path", "--use_masked_adain"):
        assert flag in spec.command
    assert EyeForAnEye().resolved_preset(RunSettings(preset="config-defaults")) == "config-defaults"


# -- the diffusion model as an option -------------------------------------------------------------------------
def test_model_given_as_folder_or_cached_hub_id_resolves(tmp_path, hf_cache):
    folder = fake_diffusers_folder(tmp_path / "sd15")
    assert resolve_hub_model(str(folder), hf_cache) == folder.resolve()
    snapshot = cached_model(hf_cache, "stable-diffusion-v1-5/stable-diffusion-v1-5")
    assert resolve_hub_model("stable-diffusion-v1-5/stable-diffusion-v1-5", hf_cache) == snapshot
    assert resolve_hub_model("nobody/nothing", hf_cache) is None


def test_alias_cache_makes_the_hard_coded_id_load_the_chosen_model(tmp_path, hf_cache):
    """huggingface_hub itself (offline) finds the chosen model's files under the official code's id, and every
    other cached model is still there."""
    huggingface_hub = pytest.importorskip("huggingface_hub")
    folder = fake_diffusers_folder(tmp_path / "my-sd")
    other = cached_model(hf_cache, "someone/else")
    alias = hub_alias_cache(tmp_path / "job" / "hf-hub", SD, folder, hf_cache)
    found = huggingface_hub.try_to_load_from_cache(SD, "unet/config.json", cache_dir=str(alias))
    assert found is not None and json.loads(open(found).read()) == {"sample_size": 64}
    snap = huggingface_hub.snapshot_download(SD, cache_dir=str(alias), local_files_only=True)
    assert Path(snap, "model_index.json").read_text().startswith("{")
    assert huggingface_hub.try_to_load_from_cache("someone/else", "unet/config.json", cache_dir=str(alias)) == str(
        alias / "models--someone--else" / "snapshots" / other.name / "unet" / "config.json")


def test_cross_image_attention_runs_with_a_local_model(tmp_path, hf_cache, tiny_pair):
    """The shipped YAML (with the CPU allowed) against a fake run.py that loads the hard-coded id as the official
    code does: it sees the local folder's files, offline."""
    repo = tmp_path / "cia"
    repo.mkdir()
    for f in ("config.py", "appearance_transfer_model.py"):
        (repo / f).write_text("")
    (repo / "run.py").write_text(textwrap.dedent(f'''
        import json, os, sys
        from huggingface_hub import try_to_load_from_cache
        from PIL import Image
        a = dict(zip(sys.argv[1::2], sys.argv[2::2]))
        out = os.path.join(a["--output_path"], a["--domain_name"], "app=appearance---struct=structure")
        os.makedirs(out)
        found = try_to_load_from_cache("{SD}", "unet/config.json")
        Image.new("RGB", (512, 512), (json.load(open(found))["sample_size"], 0, 0)).save(
            os.path.join(out, "out_transfer---seed_%s.png" % a["--seed"]))
        print("offline", os.environ.get("HF_HUB_OFFLINE"), "domain", a["--domain_name"])
    '''))
    data = yaml.safe_load((SPECS_DIR / "cross-image-attention.yaml").read_text())
    data["devices"] = ["cpu", "cuda"]
    copy = tmp_path / "cia-cpu.yaml"
    copy.write_text(yaml.safe_dump(data))
    folder = fake_diffusers_folder(tmp_path / "local-sd15")
    options = {"config": str(copy), "repo": str(repo), "python": sys.executable, "model": str(folder)}
    settings = RunSettings(seed=2, device="cpu", workdir=tmp_path / "job" / "work", options=options, dataset="afhq")
    res = ExternalMethod().run(Pair("p", *tiny_pair, dataset="afhq"), settings)
    assert res.image.getpixel((0, 0)) == (64, 0, 0)  # the local folder's unet/config.json
    assert "offline 1 domain animal" in res.info["log_tail"]  # AFHQ's domain name from datasets:
    missing = RunSettings(device="cpu", options={**options, "model": "nobody/nothing"})
    with pytest.raises(WeightsError, match="nobody/nothing is neither a folder nor in the Hugging Face cache"):
        ExternalMethod().run(Pair("p", *tiny_pair), missing)


# -- per data set ---------------------------------------------------------------------------------------------
def test_shipped_per_data_set_settings():
    sa = SwappingAutoencoder()
    assert sa.for_dataset("afhq")["model"] == "afhq_pretrained"
    assert sa.for_dataset("mountains") == {"model": "mountain_pretrained", "preprocess": "scale_shortside",
                                           "load_size": 512, "crop_size": 512, "geometry": "resize-short 512"}
    assert isinstance(sa.for_dataset("wild-pairs"), NotApplicable) and sa.not_applicable("demo")
    assert sa.not_applicable(None) is None  # an ad-hoc pair: the YAML's options (the AFHQ model)
    mountain = sa.config(RunSettings(dataset="mountains"))
    assert mountain["options"]["model"] == "mountain_pretrained" and mountain["geometry"] == "{geometry}"
    assert sa.config(RunSettings(dataset="afhq")) != mountain
    for cls in (CrossImageAttention, EyeForAnEye):
        m = cls()
        assert m.options(RunSettings(dataset="afhq")).domain_name == "animal"
        assert m.options(RunSettings(dataset="mountains")).domain_name == "mountain"
        assert m.options(RunSettings(dataset="wild-pairs")).domain_name == "object"
        assert m.options(RunSettings(dataset="afhq", options={"domain_name": "cat"})).domain_name == "cat"


@pytest.mark.parametrize("datasets, message", [
    ({"afhq": {"steps": 3}}, "datasets.afhq sets steps, which are not in options"),
    ({"afhq": {"not_applicable": "x", "mode": "ok"}}, "not_applicable: takes a one-line reason and nothing else"),
    ({"afhq": "animal"}, "datasets.afhq must be a mapping"),
])
def test_datasets_validation(tmp_path, datasets, message):
    data = yaml.safe_load((SPECS_DIR / "cross-image-attention.yaml").read_text())
    data["options"]["mode"] = "ok"
    data["datasets"] = datasets
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message):
        ExternalSpec.load(path)
