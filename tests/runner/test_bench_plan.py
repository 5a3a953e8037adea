"""Runner planning: option parsing, method selection, jobs and their config hashes, skipping."""

from __future__ import annotations

import pytest

from splice.core.errors import ConfigError
from splice.core.method import config_hash
from splice.core.store import RunStore
from splice.data.manifests import load_manifest
from splice.runner import PlanRequest, dry_run, method_overrides, parse_seeds, parse_weights, plan_jobs
from splice.runner.jobs import expand_methods
from tests.support.dummies import make_dataset, register


@pytest.fixture(autouse=True)
def _dummies(monkeypatch):
    from tests.support.dummies import ensure_importable

    ensure_importable(monkeypatch)
    register()


def test_method_args_reach_the_methods_that_have_them():
    got = method_overrides(["sleep=0.5", "log=x.log", "dummy.fail_on=[a, b]", "nomaxside.sleep=2"],
                           ["dummy", "nomaxside", "identity"])
    assert got == {"dummy": {"sleep": "0.5", "log": "x.log", "fail_on": "[a, b]"},
                   "nomaxside": {"sleep": "2", "log": "x.log"}, "identity": {}}
    with pytest.raises(ConfigError, match=r"--method-args 'splice.steps=5': splice is not among the selected"):
        method_overrides(["splice.steps=5"], ["dummy"])
    with pytest.raises(ConfigError, match=r"no selected method \(dummy\) has an option 'slep'; did you mean sleep"):
        method_overrides(["slep=1"], ["dummy"])
    with pytest.raises(ConfigError, match=r"--method-args 'steps' is not key=value"):
        method_overrides(["steps"], ["dummy"])


def test_seeds_weights_and_methods():
    assert parse_seeds("0") == [0]
    assert parse_seeds("3,1,3") == [3, 1]
    assert parse_seeds("0-2,7") == [0, 1, 2, 7]
    with pytest.raises(ConfigError, match="--seeds 'x'"):
        parse_seeds("x")
    assert parse_weights(["vit_base_patch8_224.dino"], ["splice"]) == {"splice": "vit_base_patch8_224.dino"}
    got = parse_weights(["dummy=/w/d.pth", "/w/s=1.pth"], ["dummy", "splice"])
    assert got == {"dummy": "/w/d.pth", "splice": "/w/s=1.pth"}
    assert "identity" in expand_methods("smoke")
    assert "dummy" not in expand_methods("all")  # in_benchmark=False
    assert expand_methods("dummy,identity,dummy") == ["dummy", "identity"]
    with pytest.raises(ConfigError, match=r"unknown method 'dumy'; did you mean dummy"):
        expand_methods("dumy")


def _req(tmp_path, **kw) -> PlanRequest:
    root, manifest = make_dataset(tmp_path, 3)
    base = dict(methods=["dummy", "identity"], manifests=[load_manifest(manifest)], root=root, seeds=[0, 1],
                preset="smoke", options={"dummy": {"sleep": 0}})  # fmt: skip
    base.update(kw)
    return PlanRequest(**base)


def test_plan_is_method_x_dataset_x_pair_x_seed_with_config_hashes(tmp_path):
    req = _req(tmp_path)
    jobs = plan_jobs(req)
    assert len(jobs) == 2 * 3 * 2
    assert [(j.key.pair_id, j.key.method, j.key.seed) for j in jobs[:4]] == [
        ("p0", "dummy", 0), ("p0", "dummy", 1), ("p0", "identity", 0), ("p0", "identity", 1)]  # fmt: skip
    dummy = jobs[0]
    expected = {"method": "dummy", "version": "1", "log": None, "sleep": 0.0, "block_on": None, "fail_on": [],
                "oom_above": None, "die_on": [], "oom_once": [], "scratch": False, "max_side": None}
    assert dummy.config == expected and dummy.key.config_hash == config_hash(expected)
    assert dummy.method_target == "tests.support.dummies:Dummy"
    assert dummy.pair.structure == (tmp_path / "data" / "toy" / "p0" / "structure.png").absolute()
    assert str(dummy.key) == f"dummy/toy/p0/s0-{config_hash(expected)}"
    # a changed configuration makes other jobs (new folders), the same one the same jobs
    changed = plan_jobs(_req(tmp_path / "b", options={"dummy": {"sleep": 0.5}}))
    assert changed[0].key.config_hash != dummy.key.config_hash
    # the preset is recorded, not hashed: a preset that computes the same thing is the same job
    paper = plan_jobs(_req(tmp_path / "c", preset="paper"))[0]
    assert paper.key == dummy.key and (paper.settings["preset"], dummy.settings["preset"]) == ("paper", "smoke")
    assert dummy.settings["options"] == {"sleep": 0.0} and dummy.settings["preset_resolved"] == "smoke"
    assert plan_jobs(_req(tmp_path / "d"))[0].key == dummy.key


def test_pairs_and_limit_select_rows(tmp_path):
    assert {j.key.pair_id for j in plan_jobs(_req(tmp_path, pair_ids=["p2"]))} == {"p2"}
    assert {j.key.pair_id for j in plan_jobs(_req(tmp_path / "b", limit=2))} == {"p0", "p1"}
    with pytest.raises(ConfigError, match=r"--pairs: p9 not in the selected data set\(s\) toy"):
        plan_jobs(_req(tmp_path / "c", pair_ids=["p9"]))


def test_dry_run_classifies_done_failed_and_pending(tmp_path):
    from splice.runner import run_job

    req = _req(tmp_path, methods=["dummy"], seeds=[0], options={"dummy": {"fail_on": "p1"}})
    jobs = plan_jobs(req)
    out = tmp_path / "run"
    store = RunStore(out)
    run_job(jobs[0], store)
    run_job(jobs[1], store)
    states = [p.state for p in dry_run(req, out)]
    assert states == ["done", "failed", "pending"]
    assert [p.state for p in dry_run(req, out, retry_failed=True)] == ["done", "retry", "pending"]
    assert not (out / "run.json").exists() and not (out / "jobs.csv").exists()
