"""Commands tried wrong, as a new user would: each gives a one-line error with a non-zero exit, or the right result.

The cases are those of the issue that laid out the floors ("One concept, one home"); each ran into a
traceback, a silent fallback or a wrong result before.
"""

from __future__ import annotations

import json

import pytest

from tests.support import PROJECT
from tests.support.cli import invoke
from tests.support.images import make_image
from tests.support.tiny import TINY


def one_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error: ") and "Traceback" not in err, err
    return lines[-1]


@pytest.fixture
def demo(tmp_path):
    """A data root and manifest of two small pairs (the bench's inputs)."""
    from tests.support.dummies import make_dataset

    root, manifest = make_dataset(tmp_path, 2)
    return root, manifest


# -- one option parser ----------------------------------------------------------------------------------------
def test_methods_takes_method_args_in_both_spellings(capsys):
    for arg in ("steps=5", "splice.steps=5"):
        code, out, _ = invoke(capsys, "methods", "splice", "--method-args", arg, "-a")
        assert code == 0 and out.splitlines()[1].startswith("splice ")
        assert "TypeError" not in out and "steps" in out
    code, out, _ = invoke(capsys, "methods", "splice", "--json")
    opts = {o["name"]: o for o in json.loads(out)[0]["options"]}
    assert opts["steps"]["type"] == "int" and opts["steps"]["presets"] == {
        "paper": 2000,
        "paper-10k": 10000,
        "fast": 1000,
        "smoke": 12,
    }
    assert opts["precision"]["type"] == "one of fp32, bf16" and opts["precision"]["presets"]["fast"] == "bf16"


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--method-args", "steps=abc"], "error: splice.steps: 'abc' is not an integer"),
        (
            ["--method-args", "reinhard.foo=1"],
            "error: --method-args 'reinhard.foo=1': reinhard has no option 'foo'; it takes no options",
        ),
        (["--method-args", "histogram.foo=1"], "error: --method-args 'histogram.foo=1': histogram has no option 'foo'"),
        (["--method-args", "identity.foo=1"], "error: --method-args 'identity.foo=1': identity has no option 'foo'"),
        (
            ["--method-args", "strotss.iters=3"],
            "error: --method-args 'strotss.iters=3': strotss has no option 'iters'; did you mean iters_per_scale?",
        ),
        (
            ["--preset", "smoek"],
            "error: --preset 'smoek' is not a preset; did you mean smoke? choose from paper, paper-10k, fast, smoke",
        ),
    ],
)
def test_bench_refuses_bad_options_and_presets_before_running(capsys, tmp_path, demo, argv, message):
    root, manifest = demo
    code, _, err = invoke(capsys, "bench", "--methods", "splice,reinhard,histogram,identity,strotss", "--datasets",
                          manifest, "--root", root, "--out", tmp_path / "run", "--dry-run", *argv)  # fmt: skip
    assert code == 2 and one_error(err).startswith(message)
    assert not (tmp_path / "run").exists()


def test_run_refuses_the_same_typos(capsys, tiny_pair, tmp_path):
    s, a = tiny_pair
    for argv, message in (
        (["--preset", "smoek"], "error: --preset 'smoek' is not a preset"),
        (["--method-args", "steps=abc"], "error: splice.steps: 'abc' is not an integer"),
        (["--steps", "0"], "error: splice: --steps (splice.steps) must be >= 1, not 0"),
        (["--backbone", "B/7"], "error: --backbone 'B/7' is not a known ViT; use one of B/8"),
    ):
        code, _, err = invoke(capsys, "run", s, a, "-o", tmp_path / "o", *argv)
        assert code == 2 and one_error(err).startswith(message), err
    assert not (tmp_path / "o").exists()


def test_score_vit_refuses_an_unknown_backbone(capsys, tiny_pair):
    s, a = tiny_pair
    code, _, err = invoke(capsys, "score", "vit", "--structure", s, "--appearance", a, "--output", s,
                          "--backbone", "X/9")  # fmt: skip
    assert code == 2 and one_error(err).startswith("error: --backbone 'X/9' is not a known ViT")


# -- one vocabulary: messages name the option of the command at hand ------------------------------------------------
def test_devices_message_names_devices(capsys, tmp_path, demo):
    root, manifest = demo
    code, _, err = invoke(capsys, "bench", "--methods", "identity", "--datasets", manifest, "--root", root,
                          "--out", tmp_path / "run", "--devices", "cuda:1")  # fmt: skip
    line = one_error(err)
    assert code == 2 and line.startswith("error: --devices cuda:1") and "--device " not in line


# -- edges: places that cannot be written ---------------------------------------------------------------------------
def test_an_output_place_that_is_a_file(capsys, tmp_path, tiny_pair, demo):
    s, a = tiny_pair
    root, manifest = demo
    f = tmp_path / "README.md"
    f.write_text("x")
    cases = [
        (["run", s, a, "-o", f, "--preset", "smoke"], "--out"),
        (["bench", "--methods", "identity", "--datasets", manifest, "--root", root, "--out", f], "--out"),
        (["perf", "--dest", f], "--dest"),
    ]
    for argv, option in cases:
        code, _, err = invoke(capsys, *argv)
        assert code == 2 and one_error(err) == f"error: {option} {f} is a file, not a folder; choose a folder", err
    assert f.read_text() == "x"


def test_an_immutable_output_folder_stops_run_before_training(capsys, tiny_pair, locked_dir):
    s, a = tiny_pair
    code, _, err = invoke(capsys, "run", s, a, "-o", locked_dir, "--preset", "smoke", "--backbone", TINY["backbone"],
                          "--weights", "random", "--device", "cpu")  # fmt: skip
    assert (
        code == 2
        and one_error(err)
        == f"error: --out {locked_dir} is not writable (the folder is immutable or not ours); choose a writable folder"
    )
    assert "splice" not in err.split("error:")[0]  # no progress bar, no training before the error


def test_report_study_and_score_check_their_places(capsys, tmp_path, run_store):
    run_store.add("demo", "p1", "identity", output=make_image(64, 64))
    run = run_store.root
    f = tmp_path / "file.txt"
    f.write_text("x")
    code, _, err = invoke(capsys, "report", "--out", run, "--dest", f)
    assert code == 2 and one_error(err).endswith(f"--dest {f} is a file, not a folder; choose a folder")
    code, _, err = invoke(capsys, "study", "export", "--out", run, "--baselines", "identity", "--base-url",
                          "http://x", "--dest", f)  # fmt: skip
    assert code == 2 and one_error(err).endswith(f"--dest {f} is a file, not a folder; choose a folder")
    code, _, err = invoke(capsys, "study", "analyze", "--results", f, "--key", f, "--dest", f)
    assert code == 2 and one_error(err).endswith(f"--dest {f} is a file, not a folder; choose a folder")
    jobs = run / "outputs" / "demo"  # a report among the job folders would mix with results
    code, _, err = invoke(capsys, "report", "--out", run, "--dest", jobs)
    assert code == 2 and one_error(err) == (f"error: --dest {jobs} is inside the run's outputs/ (its job folders); "
                                            f"leave --dest out for {run / 'report'} or choose a folder outside "
                                            "outputs/")  # fmt: skip
    assert not (jobs / "index.html").exists()


# -- bench status writes only into a run store ------------------------------------------------------------------------
def test_bench_status_refuses_a_folder_that_is_not_a_run_store(capsys, tmp_path):
    datasets = PROJECT / "datasets"
    before = sorted(p.name for p in datasets.iterdir())
    code, _, err = invoke(capsys, "bench", "status", "--out", datasets)
    assert (
        code == 2
        and one_error(err)
        == f"error: --out {datasets} is not a run store (no run.json, no outputs/); give the --out of `splice bench`"
    )
    assert sorted(p.name for p in datasets.iterdir()) == before  # no jobs.csv written
    code, _, err = invoke(capsys, "bench", "status", "--out", tmp_path / "none")
    assert code == 2 and "run store not found" in one_error(err)


# -- bench with a --root that lacks images ---------------------------------------------------------------------------
def test_bench_stops_when_images_are_missing_unless_asked(capsys, tmp_path, demo):
    root, manifest = demo
    (root / "toy" / "p1" / "appearance.png").unlink()
    args = ["bench", "--methods", "identity", "--datasets", manifest, "--root", root, "--out", tmp_path / "run",
            "--devices", "cpu", "--workers", "0", "--no-progress"]  # fmt: skip
    code, _, err = invoke(capsys, *args)
    line = one_error(err)
    assert code == 2 and line.startswith("error: 1 image(s) of the selected pairs are missing under --root")
    assert "splice datasets check --root" in line and "--skip-missing" in line
    assert not (tmp_path / "run" / "outputs").exists()  # nothing ran
    code, _, err = invoke(capsys, *args, "--skip-missing")
    assert code == 0 and "1 job(s) left pending: their images are missing" in err
    from splice.core.store import RunStore

    assert [k.pair_id for k, r in RunStore(tmp_path / "run").iter_records() if r.ok] == ["p0"]


# -- make demo is repeatable --------------------------------------------------------------------------------------
def test_demo_command_twice(capsys, tmp_path):
    """The command `make demo` runs (with a tiny ViT instead of ViT-S/16, for speed), twice."""
    s = PROJECT / "datasets" / "demo" / "sa_208_209" / "structure.jpg"
    a = PROJECT / "datasets" / "demo" / "sa_208_209" / "appearance.jpg"
    args = [
        "run",
        s,
        a,
        "-o",
        tmp_path / "demo",
        "--preset",
        "smoke",
        "--device",
        "cpu",
        "--allow-random-weights",
        "--resume",
        "--steps",
        "2",
        "--backbone",
        TINY["backbone"],
        "--weights",
        "random",
        "--quiet",
    ]
    code, _, _ = invoke(capsys, *args)
    assert code == 0 and (tmp_path / "demo" / "output.png").is_file()
    code, _, err = invoke(capsys, *args)
    assert code == 0 and f"{tmp_path / 'demo'} already holds a finished run ({tmp_path / 'demo' / 'output.png'})" in err
    assert (
        "demo" in (PROJECT / "Makefile").read_text().split("demo: install")[1].split("\n\n")[0]
        and "--resume" in (PROJECT / "Makefile").read_text().split("demo: install")[1].split("\n\n")[0]
    )


@pytest.mark.parametrize("devices", ["", ",", " "])
def test_dry_run_with_no_devices_is_the_same_one_line_error(capsys, tmp_path, demo, devices):
    root, manifest = demo
    code, _, err = invoke(capsys, "bench", "--methods", "identity", "--datasets", manifest, "--root", root, "--out",
                          tmp_path / "run", "--dry-run", "--devices", devices)  # fmt: skip
    assert code == 2 and one_error(err) == "error: --devices is empty; use auto, cpu or e.g. cuda:0,cuda:1"
