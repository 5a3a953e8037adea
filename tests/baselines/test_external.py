"""The external adapter, driven against a tiny fake "official repository" written by the test."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from baselines.external import (
    SPECS_DIR,
    CheckoutError,
    CrossImageAttention,
    ExternalError,
    ExternalMethod,
    ExternalSpec,
    EyeForAnEye,
    SwappingAutoencoder,
    device_values,
    git_commit,
)
from splice.core.errors import ConfigError, UserError, WeightsError
from splice.core.geometry import Geometry, infer_geometry, parse_geometry, reconcile
from splice.core.method import Pair, RunSettings
from splice.core.registry import methods

FAKE_RUN = r'''
import argparse, os, subprocess, sys, time
from PIL import Image

p = argparse.ArgumentParser()
p.add_argument("--struct"); p.add_argument("--app"); p.add_argument("--out"); p.add_argument("--seed", type=int)
p.add_argument("--mode", default="ok"); p.add_argument("--size", type=int, default=64)
args = p.parse_args()
print("fake method: seed", args.seed, "mode", args.mode, "cuda_visible=[%s]" % os.environ.get("CUDA_VISIBLE_DEVICES"))
print("inputs:", sorted(os.listdir(os.path.dirname(args.struct))))
sys.stdout.flush()
if args.mode == "fail":
    print("RuntimeError: CUDA out of memory (fake)", file=sys.stderr)
    sys.exit(3)
if args.mode == "sleep":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with open(os.path.join(args.out, "child.pid"), "w") as f:
        f.write(str(child.pid))
    time.sleep(60)
if args.mode == "nothing":
    sys.exit(0)
im = Image.open(args.struct).convert("RGB")
w, h = im.size
s = min(w, h)
im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
im = im.resize((args.size, args.size), Image.BICUBIC)
os.makedirs(os.path.join(args.out, "res"), exist_ok=True)
im.save(os.path.join(args.out, "res", "out_seed%d.png" % args.seed))
if args.mode == "two":
    im.save(os.path.join(args.out, "res", "out_seed%d_copy.png" % args.seed))
'''


def _spec_dict(**over) -> dict:
    d = {
        "version": 1,
        "name": "fake-method",
        "paper": "Nobody, A Fake Method, 2099",
        "summary": "test double",
        "repository": "https://github.com/example/fake-method",
        "check": ["run.py"],
        "devices": ["cpu"],
        "python": sys.executable,
        "command": ["{python}", "run.py", "--struct", "{structure}", "--app", "{appearance}", "--out", "{output_dir}",
                    "--seed", "{seed}", "--mode", "{mode}", "--size", "{size}"],
        "env": {"CUDA_VISIBLE_DEVICES": "{cuda_visible}"},
        "inputs": {"place": "convert", "structure": "s.png", "appearance": "a.png"},
        "output": "res/out_seed{seed}*.png",
        "geometry": "center-crop {size}x{size}",
        "timeout": 60,
        "options": {"mode": "ok", "size": 64},
        "presets": {"smoke": {"size": 32}},
    }
    d.update(over)
    return d


@pytest.fixture
def fake_repo(tmp_path) -> Path:
    repo = tmp_path / "fake-checkout"
    repo.mkdir()
    (repo / "run.py").write_text(FAKE_RUN)
    return repo


@pytest.fixture
def fake_yaml(tmp_path, fake_repo) -> Path:
    path = tmp_path / "fake.yaml"
    path.write_text(yaml.safe_dump(_spec_dict(repo=str(fake_repo))))
    return path


def _settings(tmp_path, yaml_path, **options) -> RunSettings:
    job = tmp_path / "runs" / "outputs" / "demo" / "p1" / "external" / "s3-abc"
    return RunSettings(preset="paper", seed=3, device="cpu", workdir=job / "work",
                       options={"config": str(yaml_path), **options})


def _pair(tiny_pair) -> Pair:
    s, a = tiny_pair
    return Pair(pair_id="p1", structure=s, appearance=a, dataset="demo")


# -- success ------------------------------------------------------------------------------------------------------
def test_external_success_output_geometry_log_and_record(tmp_path, tiny_pair, fake_yaml):
    settings = _settings(tmp_path, fake_yaml)
    res = methods.create("external").run(_pair(tiny_pair), settings)
    # geometry: centre crop of the 96x80 structure image to a square, resized to 64x64
    assert res.geometry == Geometry(source=(96, 80), box=(8, 0, 88, 80), output=(64, 64), kind="center-crop")
    expected = res.geometry.apply(Image.open(tiny_pair[0]).convert("RGB"))
    assert np.array_equal(np.asarray(res.image), np.asarray(expected))  # same crop, same resampling
    log = settings.workdir.parent / "log.txt"
    text = log.read_text()
    assert "fake method: seed 3 mode ok cuda_visible=[]" in text
    assert "inputs: ['a.png', 's.png']" in text and "exit code 0" in text
    info = res.info
    assert info["log"] == str(log) and "fake method: seed 3" in info["log_tail"]
    assert info["command"][info["command"].index("--seed") + 1] == "3"
    assert info["returncode"] == 0 and info["random_weights"] is False
    assert info["weights"]["checkout"].endswith("fake-checkout") and info["weights"]["commit"] is None
    assert info["inputs"]["structure"]["size"] == [96, 80]
    assert Path(info["output_file"]).parent == settings.workdir / "output" / "res"


def test_external_presets_and_method_args_override(tmp_path, tiny_pair, fake_yaml):
    m = ExternalMethod()
    smoke = _settings(tmp_path, fake_yaml)
    smoke.preset = "smoke"
    assert m.run(_pair(tiny_pair), smoke).image.size == (32, 32)  # presets.smoke.size
    over = _settings(tmp_path, fake_yaml, size="48")
    over.preset = "smoke"
    assert m.config(over)["options"]["size"] == 48  # --method-args beat the preset, typed like the default
    assert m.run(_pair(tiny_pair), over).image.size == (48, 48)
    assert m.config(over) != m.config(smoke)
    # where the checkout lives and which python runs it do not change the output: same job
    elsewhere = _settings(tmp_path, fake_yaml, repo="/elsewhere", python="py3")
    assert m.config(elsewhere) == m.config(_settings(tmp_path, fake_yaml))
    with pytest.raises(ConfigError, match="fake-method: unknown option 'sizee'; did you mean size\\?"):
        m.config(_settings(tmp_path, fake_yaml, sizee="1"))


def test_external_deterministic_and_reruns_start_clean(tmp_path, tiny_pair, fake_yaml):
    settings = _settings(tmp_path, fake_yaml)
    r1 = ExternalMethod().run(_pair(tiny_pair), settings)
    stale = settings.workdir / "output" / "res" / "out_seed3_stale.png"
    stale.write_bytes(b"left over by a killed attempt")
    r2 = ExternalMethod().run(_pair(tiny_pair), settings)  # the stale file would make the glob ambiguous
    assert r1.image.tobytes() == r2.image.tobytes()


def test_external_without_workdir_uses_a_temporary_folder(tiny_pair, fake_yaml):
    res = ExternalMethod().run(_pair(tiny_pair), RunSettings(seed=1, options={"config": str(fake_yaml)}))
    assert res.image.size == (64, 64) and res.info["log"] is None and "seed 1" in res.info["log_tail"]


def test_python_and_repo_expand_home(tmp_path, fake_yaml, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    spec = ExternalSpec.load(fake_yaml)
    settings = RunSettings(options={"python": "~/envs/m/bin/python", "repo": "~/src/m"})
    assert spec.resolve_python(settings) == str(tmp_path / "envs/m/bin/python")
    assert spec.resolve_repo(settings) == tmp_path / "src/m"
    monkeypatch.setenv("SPLICE_PYTHON_FAKE_METHOD", "/opt/py")
    assert spec.resolve_python(RunSettings()) == "/opt/py"


def test_external_cuda_visible_follows_inherited_mask(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert device_values("cuda:1") == {"device": "cuda:1", "cuda_index": "1", "cuda_visible": "5", "num_gpus": "1"}
    assert device_values("cuda")["cuda_visible"] == "3"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert device_values("cuda:2")["cuda_visible"] == "2"
    assert device_values("cpu") == {"device": "cpu", "cuda_index": "", "cuda_visible": "", "num_gpus": "0"}


# -- failures -----------------------------------------------------------------------------------------------------
def _one_line(e: BaseException) -> str:
    msg = str(e)
    assert "\n" not in msg
    return msg


def test_external_nonzero_exit_points_at_log(tmp_path, tiny_pair, fake_yaml):
    settings = _settings(tmp_path, fake_yaml, mode="fail")
    with pytest.raises(ExternalError) as e:
        ExternalMethod().run(_pair(tiny_pair), settings)
    msg = _one_line(e.value)
    log = settings.workdir.parent / "log.txt"
    assert "exited with code 3" in msg and str(log) in msg
    assert "CUDA out of memory (fake)" in msg  # the last line of the log
    assert "RuntimeError: CUDA out of memory (fake)" in log.read_text()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie counts as dead
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_external_timeout_kills_the_whole_process_group(tmp_path, tiny_pair, fake_yaml):
    settings = _settings(tmp_path, fake_yaml, mode="sleep", timeout="1.5")
    t0 = time.perf_counter()
    with pytest.raises(
        ExternalError, match=r"timed out after 2 s; see .*log\.txt; raise it with --method-args timeout="
    ):
        ExternalMethod().run(_pair(tiny_pair), settings)
    assert time.perf_counter() - t0 < 15
    pid = int((settings.workdir / "output" / "child.pid").read_text())
    deadline = time.time() + 5
    while _alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), "the method's own child process survived the timeout"
    assert "(timed out)" in (settings.workdir.parent / "log.txt").read_text()


def test_external_missing_output(tmp_path, tiny_pair, fake_yaml):
    with pytest.raises(ExternalError) as e:
        ExternalMethod().run(_pair(tiny_pair), _settings(tmp_path, fake_yaml, mode="nothing"))
    msg = _one_line(e.value)
    assert "wrote no file matching 'res/out_seed3*.png'" in msg and "log.txt" in msg and str(fake_yaml) in msg


def test_external_ambiguous_output(tmp_path, tiny_pair, fake_yaml):
    with pytest.raises(ExternalError, match="2 files match"):
        ExternalMethod().run(_pair(tiny_pair), _settings(tmp_path, fake_yaml, mode="two"))


def test_external_missing_checkout(tmp_path, tiny_pair, monkeypatch):
    path = tmp_path / "nocheckout.yaml"
    path.write_text(yaml.safe_dump(_spec_dict()))  # no repo: configured
    monkeypatch.delenv("SPLICE_REPO_FAKE_METHOD", raising=False)
    with pytest.raises(CheckoutError) as e:
        ExternalMethod().run(_pair(tiny_pair), _settings(tmp_path, path))
    msg = _one_line(e.value)
    assert "no checkout configured" in msg
    assert "git clone https://github.com/example/fake-method <dir>" in msg
    assert str(path) in msg and "SPLICE_REPO_FAKE_METHOD" in msg and "repo=<dir>" in msg
    with pytest.raises(CheckoutError, match=f"no checkout at {tmp_path / 'gone'}"):
        ExternalMethod().run(_pair(tiny_pair), _settings(tmp_path, path, repo=str(tmp_path / "gone")))
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    with pytest.raises(
        CheckoutError, match="is not a checkout of https://github.com/example/fake-method .missing run.py"
    ):
        ExternalMethod().run(_pair(tiny_pair), _settings(tmp_path, path, repo=str(wrong)))


def test_external_repo_from_environment(tmp_path, tiny_pair, fake_repo, monkeypatch):
    path = tmp_path / "env.yaml"
    path.write_text(yaml.safe_dump(_spec_dict()))
    monkeypatch.setenv("SPLICE_REPO_FAKE_METHOD", str(fake_repo))
    assert ExternalMethod().run(_pair(tiny_pair), _settings(tmp_path, path)).image.size == (64, 64)


def test_external_missing_weights_say_what_to_download(tmp_path, tiny_pair, fake_repo):
    path = tmp_path / "w.yaml"
    need = {
        "path": "{repo}/checkpoints/{size}/model.pth",
        "how": "download model.pth from https://example.org/m into checkpoints/{size}/",
    }
    path.write_text(yaml.safe_dump(_spec_dict(repo=str(fake_repo), requires=[need])))
    m = ExternalMethod()
    with pytest.raises(WeightsError) as e:
        m.run(_pair(tiny_pair), _settings(tmp_path, path))
    msg = _one_line(e.value)
    assert f"missing {fake_repo}/checkpoints/64/model.pth" in msg
    assert "https://example.org/m into checkpoints/64/" in msg
    reqs = m.requirements(_settings(tmp_path, path))
    assert [r.ready for r in reqs] == [True, False]
    (fake_repo / "checkpoints" / "64").mkdir(parents=True)
    (fake_repo / "checkpoints" / "64" / "model.pth").write_bytes(b"w")
    assert all(r.ready for r in m.requirements(_settings(tmp_path, path)))
    assert m.run(_pair(tiny_pair), _settings(tmp_path, path)).image.size == (64, 64)


def test_external_wrong_device_and_bad_geometry(tmp_path, tiny_pair, fake_repo):
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(_spec_dict(repo=str(fake_repo), devices=["cuda"])))
    with pytest.raises(ConfigError, match="runs on cuda only"):
        ExternalMethod().run(_pair(tiny_pair), _settings(tmp_path, path))
    path.write_text(yaml.safe_dump(_spec_dict(repo=str(fake_repo), geometry="stretch 128x64")))
    with pytest.raises(ConfigError, match=r"output is 64x64 but the geometry predicts 128x64.*fix geometry: in"):
        ExternalMethod().run(_pair(tiny_pair), _settings(tmp_path, path))


@pytest.mark.parametrize(
    "over, message",
    [
        ({"comand": ["x"]}, "unknown key.s. comand"),
        ({"command": "python run.py"}, "must be a list of arguments"),
        ({"output": "{nope}.png"}, r"unknown placeholder \{nope\}"),
        ({"inputs": {"place": "move"}}, "inputs.place 'move'"),
        ({"presets": {"smoke": {"steps": 1}}}, "presets.smoke sets steps"),
        ({"options": {"seed": 1}}, "reserved placeholders"),
        ({"version": 2}, "version 2 is not supported"),
    ],
)
def test_spec_validation_names_the_file(tmp_path, over, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_spec_dict(**over)))
    with pytest.raises(ConfigError, match=message) as e:
        ExternalSpec.load(path)
    assert str(path) in _one_line(e.value)


def test_external_without_config_is_a_clear_error(tiny_pair):
    m = methods.create("external")
    with pytest.raises(ConfigError, match="--method-args config=path.yaml"):
        m.run(_pair(tiny_pair), RunSettings())
    assert [r.ready for r in m.requirements(RunSettings())] == [False]
    with pytest.raises(ConfigError, match="config not found"):
        m.config(RunSettings(options={"config": "/no/such.yaml"}))


def test_git_commit_read_from_dot_git(tmp_path):
    repo = tmp_path / "r"
    (repo / ".git" / "refs" / "heads").mkdir(parents=True)
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (repo / ".git" / "refs" / "heads" / "main").write_text("a" * 40 + "\n")
    assert git_commit(repo) == "a" * 40
    (repo / ".git" / "refs" / "heads" / "main").unlink()
    (repo / ".git" / "packed-refs").write_text("# pack-refs\n" + "b" * 40 + " refs/heads/main\n")
    assert git_commit(repo) == "b" * 40
    assert git_commit(tmp_path) is None


# -- the shipped YAMLs --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls, name", [(SwappingAutoencoder, "swapping-autoencoder"),
                                       (CrossImageAttention, "cross-image-attention"), (EyeForAnEye, "eye-for-an-eye")])
def test_shipped_specs_load_and_register(cls, name, monkeypatch):
    spec = ExternalSpec.load(SPECS_DIR / f"{name}.yaml")
    assert spec.name == name == cls.name and methods.get_class(name) is cls
    assert spec.repository.startswith("https://github.com/") and spec.paper and cls.paper == spec.paper
    assert not cls.in_smoke
    monkeypatch.delenv(f"SPLICE_REPO_{spec.env_name}", raising=False)
    m = cls()
    reqs = m.requirements(RunSettings(device="cuda"))
    assert reqs[0].ready is False and f"SPLICE_REPO_{spec.env_name}" in reqs[0].how


def test_shipped_geometries():
    sa = ExternalSpec.load(SPECS_DIR / "swapping-autoencoder.yaml")
    assert sa.options["geometry"] == "stretch 256x256"
    assert parse_geometry(sa.options["geometry"], (512, 512)) == Geometry.resize((512, 512), (256, 256))
    cia = ExternalSpec.load(SPECS_DIR / "cross-image-attention.yaml")
    g = parse_geometry(cia.geometry, (800, 533))
    assert g.box == (133, 0, 666, 533) and g.output == (512, 512)  # their load_size: offset (w - h) // 2
    efae = ExternalSpec.load(SPECS_DIR / "eye-for-an-eye.yaml")
    g = parse_geometry(efae.geometry, (800, 533))
    assert g.box == (0, 0, 800, 533) and g.output == (512, 512) and g.kind == "stretch"


def test_shipped_command_fills(tmp_path, tiny_pair, monkeypatch):
    """The cross-image-attention YAML run against a fake run.py that records its argv."""
    repo = tmp_path / "cia"
    repo.mkdir()
    for f in ("config.py", "appearance_transfer_model.py"):
        (repo / f).write_text("")
    (repo / "run.py").write_text(textwrap.dedent('''
        import json, sys, os
        from PIL import Image
        a = dict(zip(sys.argv[1::2], sys.argv[2::2]))
        out = os.path.join(a["--output_path"], a["--domain_name"], "app=appearance---struct=structure")
        os.makedirs(out)
        Image.new("RGB", (512, 512), (1, 2, 3)).save(os.path.join(out, "out_transfer---seed_%s.png" % a["--seed"]))
        print(json.dumps(a))
    '''))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    options = {"repo": str(repo), "python": sys.executable, "domain_name": "animal"}
    settings = RunSettings(seed=5, device="cpu", workdir=tmp_path / "job" / "work", options=options)
    with pytest.raises(ConfigError, match="runs on cuda only"):
        CrossImageAttention().run(_pair(tiny_pair), settings)
    # The same YAML with the CPU allowed (this machine has no GPU), run through the generic adapter.
    data = yaml.safe_load((SPECS_DIR / "cross-image-attention.yaml").read_text())
    data["devices"] = ["cpu", "cuda"]
    copy = tmp_path / "cia-cpu.yaml"
    copy.write_text(yaml.safe_dump(data))
    settings.options = {**options, "config": str(copy)}
    res = ExternalMethod().run(_pair(tiny_pair), settings)
    argv = res.info["command"]
    args = dict(zip(argv[2::2], argv[3::2]))
    assert args["--seed"] == "5" and args["--domain_name"] == "animal" and args["--use_masked_adain"] == "True"
    assert args["--num_timesteps"] == "100" and args["--contrast_strength"] == "1.67"
    assert args["--struct_image_path"].endswith("work/inputs/structure.png")
    assert res.geometry.kind == "center-crop" and res.geometry.output == (512, 512)


# -- geometry language --------------------------------------------------------------------------------------------
def test_geometry_language():
    assert parse_geometry("native", (100, 50)).is_identity
    assert parse_geometry("resize-short 25", (100, 50)).output == (50, 25)
    assert parse_geometry("resize-long 50", (100, 50)).output == (50, 25)
    assert parse_geometry("center-crop 40", (100, 50)).box == (25, 0, 75, 50)
    assert parse_geometry("Stretch 64X32", (100, 50)).output == (64, 32)
    with pytest.raises(ValueError, match="unknown geometry"):
        parse_geometry("crop 5x5", (100, 50))
    g, note = reconcile(parse_geometry("resize-short 512", (800, 533)), (784, 512))  # rounded by the method
    assert g.output == (784, 512) and g.box == (0, 0, 800, 533) and "784x512 instead of the predicted 768x512" in note
    with pytest.raises(ValueError, match="does not describe"):
        reconcile(parse_geometry("resize-short 512", (800, 533)), (512, 512))
    assert infer_geometry((512, 512), (256, 256)).kind == "resize"
    assert infer_geometry((120, 80), (64, 64)).box == (20, 0, 100, 80)
    assert infer_geometry((120, 80), (120, 80)).is_identity


def test_user_errors_are_user_errors():
    assert issubclass(ExternalError, UserError) and issubclass(CheckoutError, UserError)
