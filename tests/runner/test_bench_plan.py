"""Runner planning: option parsing, method selection, jobs and their config hashes, skipping."""

from __future__ import annotations

import pytest

from splice.runner import PlanRequest, dry_run, parse_method_args, parse_seeds, parse_weights, plan_jobs
from splice.runner.jobs import expand_methods
from splice.core.errors import ConfigError
from splice.data.manifests import load_manifest
from splice.core.method import config_hash
from splice.core.store import RunStore

from test_bench_dummies import make_dataset, register


@pytest.fixture(autouse=True)
def _dummies(monkeypatch):
    from test_bench_dummies import ensure_importable

    ensure_importable(monkeypatch)
    register()


def test_method_args_are_typed_and_scoped():
    got = parse_method_args(
        ["steps=100", "lr=1e-3", "flag=true", "name=abc", "dummy.steps=7", "dummy.sizes=[1, 2]", "identity.x=0.5"],
        ["dummy", "identity"],
    )
    assert got["dummy"] == {"steps": 7, "lr": 0.001, "flag": True, "name": "abc", "sizes": [1, 2]}
    assert got["identity"] == {"steps": 100, "lr": 0.001, "flag": True, "name": "abc", "x": 0.5}
    assert isinstance(got["identity"]["steps"], int) and isinstance(got["dummy"]["lr"], float)
    assert parse_method_args(["splice.steps=5"], ["dummy"]) == {"dummy": {}}  # a method not in this run
    with pytest.raises(ConfigError, match=r"--method-args 'steps' is not k=v"):
        parse_method_args(["steps"], ["dummy"])


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
    expected = {"preset": "smoke", "weights": None, "max_side": None, "sleep": 0}
    assert dummy.config == expected and dummy.key.config_hash == config_hash(expected)
    assert dummy.method_target == "test_bench_dummies:Dummy"
    assert dummy.pair.structure == (tmp_path / "data" / "toy" / "p0" / "structure.png").absolute()
    assert str(dummy.key) == f"dummy/toy/p0/s0-{config_hash(expected)}"
    # a changed configuration makes other jobs (new folders), the same one the same jobs
    changed = plan_jobs(_req(tmp_path / "b", options={"dummy": {"sleep": 0.5}}))
    assert changed[0].key.config_hash != dummy.key.config_hash
    assert plan_jobs(_req(tmp_path / "c", preset="paper"))[0].key.config_hash != dummy.key.config_hash
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
