"""The cost before the run: estimates from a store with known records, from the reference table, scaled by
image size and steps; the dry run's per-method table and wall time (hand-computed figures)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner

from splice.cli import cli
from splice.core.errors import ConfigError
from splice.core.store import RunStore
from splice.data.manifests import load_manifest
from splice.runner import PlanRequest, plan_jobs
from splice.runner.cost import REFERENCE, SHAPES, CostModel, Reference, Shape, estimate_plan, working_pixels
from splice.runner.packing import PackingPolicy
from tests.support.dummies import make_dataset
from tests.support.store import write_job

SMALL, BIG = 96 * 80, 1200 * 900  # make_dataset: p0 is 96x80, p1 (big) is 1200x900
#: the dummy's shape and reference for these tests: native resolution, `steps` from its configuration
SHAPE = {"dummy": Shape(lambda c: float(c.get("steps", 1)), native=True, keys=frozenset({"steps"}))}
REF = {("dummy", "cuda"): Reference(seconds_fixed=2.0, seconds_per_step=8.0, memory_mb=1000.0, memory_per_mpx=1000.0,
                                    pixels=SMALL, source="test")}  # fmt: skip


@pytest.fixture
def toy(tmp_path, dummies):
    root, manifest = make_dataset(tmp_path, 2, big=(1,))
    req = PlanRequest(methods=["dummy"], manifests=[load_manifest(manifest)], root=root, preset="smoke")
    return req, plan_jobs(req), root, manifest


def record(tmp_path, pair, *, config_hash, seconds, memory, device="cuda:0", size=(96, 80), method="dummy", **kw):
    return write_job(tmp_path / "run", "toy", pair, method, config_hash=config_hash, seconds=seconds,
                     peak_memory_mb=memory, device=device, inputs={"structure": {"size": list(size)}},
                     **kw)  # fmt: skip


def test_working_pixels():
    assert working_pixels((1200, 900), {}, None) == 1200 * 900
    assert working_pixels((1200, 900), {"resize": 128}, None) == 171 * 128  # Splice's smoke preset: short side 128
    assert working_pixels((1200, 900), {}, 450) == 600 * 450  # the OOM ladder's cap
    assert working_pixels((1200, 900), {"resize": 600}, 450) == 600 * 450
    assert working_pixels((300, 200), {}, 512) == 300 * 200  # a cap above the image changes nothing


def test_reference_table_scaled_by_size_and_steps(toy):
    _, jobs, _, _ = toy
    model = CostModel([], reference=REF, shapes=SHAPE)
    small, big = model.estimate(jobs[0], "cuda:0"), model.estimate(jobs[1], "cuda:1")
    assert small.seconds == pytest.approx(2 + 8)  # fixed + per step x 1 step x size 1
    assert big.seconds == pytest.approx(2 + 8 * BIG / SMALL)  # 1127 s
    assert small.memory_mb == pytest.approx(1000)
    assert big.memory_mb == pytest.approx(1000 + 1000 * (BIG - SMALL) / 1e6)  # 2072.32 MB
    assert big.source == "reference table (test)" and not big.size_assumed
    assert model.estimate(jobs[0], "cpu").seconds is None  # no CPU figure: unknown
    more = CostModel([], reference=REF, shapes={"dummy": Shape(lambda c: 10.0, native=True)})
    assert more.estimate(jobs[0], "cuda").seconds == pytest.approx(2 + 8 * 10)
    shared = {("dummy", "cuda"): dataclasses.replace(REF[("dummy", "cuda")], step_fixed_share=0.75)}
    est = CostModel([], reference=shared, shapes=SHAPE).estimate(jobs[1], "cuda")
    assert est.seconds == pytest.approx(2 + 8 * (0.75 + 0.25 * BIG / SMALL))  # a quarter of the step grows


def test_records_of_the_store_win_and_are_scaled_the_same_way(toy, tmp_path):
    _, jobs, _, _ = toy
    h = jobs[0].key.config_hash
    cfg = jobs[0].config
    record(tmp_path, "old1", config_hash=h, seconds=20.0, memory=1500.0, config=cfg)  # 2x the reference's 10 s
    record(tmp_path, "old2", config_hash="five", seconds=100.0, memory=9000.0,
           config={**cfg, "steps": 5})  # five steps: 2 + 8 x 5 = 42 s by the reference, 100 s measured
    record(tmp_path, "old3", config_hash="slow", seconds=500.0, memory=50.0,
           config={**cfg, "sleep": 9.0})  # another computation: says nothing about these jobs
    record(tmp_path, "old4", config_hash=h, seconds=999.0, memory=9999.0, device="cpu",
           config=cfg)  # another kind of device  # fmt: skip
    model = CostModel.from_store(tmp_path / "run", reference=REF, shapes=SHAPE)
    small, big = model.estimate(jobs[0], "cuda:0"), model.estimate(jobs[1], "cuda:0")
    assert small.seconds == pytest.approx(20.0) and small.memory_mb == pytest.approx(1500.0)
    assert big.seconds == pytest.approx(2 * (2 + 8 * BIG / SMALL))  # the record's ratio, 2, times the reference
    assert big.memory_mb == pytest.approx(1.5 * (1000 + 1000 * (BIG - SMALL) / 1e6))
    assert small.source == "1 record(s) of this store, same configuration"
    assert model.estimate(jobs[0], "cpu").seconds == pytest.approx(999.0)  # CPU: its own record
    # without a reference figure: proportional to steps x pixels for a native method; memory = the largest peak
    bare = CostModel.from_store(tmp_path / "run", reference={}, shapes=SHAPE)
    assert bare.estimate(jobs[1], "cuda").seconds == pytest.approx(20.0 * BIG / SMALL)
    assert bare.estimate(jobs[1], "cuda").memory_mb == pytest.approx(1500.0)
    # no record of this configuration: the records of configurations that differ only in steps, each scaled
    other = CostModel.from_store(tmp_path / "run", reference=REF, shapes=SHAPE)
    job = dataclasses.replace(jobs[0], key=dataclasses.replace(jobs[0].key, config_hash="fresh"),
                              config={**cfg, "steps": 3})  # fmt: skip
    est = other.estimate(job, "cuda")
    ratio = (20 / 10 + 100 / 42) / 2  # the median of old1's and old2's ratios; old3 computes something else
    assert est.seconds == pytest.approx(ratio * (2 + 8 * 3)) and "2 record(s)" in est.source
    assert est.memory_mb == pytest.approx(9000.0)  # the largest peak, scaled (same size)
    assert not SHAPE["dummy"].comparable(cfg, {**cfg, "sleep": 9.0}) and SHAPE["dummy"].comparable(cfg, {
        **cfg, "steps": 7, "max_side": 512, "preset": "paper"})  # fmt: skip


def test_plan_per_method_and_wall_time(toy, tmp_path):
    _, jobs, _, _ = toy
    record(tmp_path, "old1", config_hash=jobs[0].key.config_hash, seconds=20.0, memory=1500.0)
    model = CostModel.from_store(tmp_path / "run", reference=REF, shapes=SHAPE)
    big = 2 * (2 + 8 * BIG / SMALL)  # 2254 s
    one = estimate_plan(jobs, model, ["cuda:0"])
    assert one.wall_seconds == pytest.approx(20 + big) and one.job_seconds == pytest.approx(20 + big)
    (m,) = one.methods
    assert (m.method, m.jobs, m.unknown) == ("dummy", 2, 0) and m.seconds_per_job == pytest.approx((20 + big) / 2)
    assert m.memory_mb == pytest.approx(1.5 * (1000 + 1000 * (BIG - SMALL) / 1e6))
    assert estimate_plan(jobs, model, ["cuda:0", "cuda:1"]).wall_seconds == pytest.approx(big)
    packed = estimate_plan(jobs, model, ["cuda:0"], policy=PackingPolicy(auto=True, cap=8),
                           capacity_mb={"cuda:0": 80 * 1024})  # both fit at once in 80 GB  # fmt: skip
    assert packed.wall_seconds == pytest.approx(big) and "--jobs-per-device auto" in packed.how
    slurm = estimate_plan(jobs, model, ["cuda:0"], slurm_tasks=64)
    assert slurm.wall_seconds == pytest.approx(big) and slurm.devices == ["2 x cuda"]
    text = one.table()
    assert "dummy" in text.splitlines()[1] and "expected wall time: 37:54 min on cuda:0" in text


def test_fixed_working_sizes_and_sizes_from_the_manifest(toy, tmp_path):
    _, jobs, root, _ = toy
    shapes = {"dummy": Shape(lambda c: 1.0, working=lambda c: float(c.get("side", 100)) ** 2)}
    ref = {("dummy", "cuda"): Reference(0.0, 10.0, 500.0, 100.0, pixels=100 * 100, source="test")}
    model = CostModel([], reference=ref, shapes=shapes)
    big = dataclasses.replace(jobs[1], config={**jobs[1].config, "side": 200},
                              key=dataclasses.replace(jobs[1].key, config_hash="side200"))  # fmt: skip
    assert model.estimate(jobs[1], "cuda").seconds == pytest.approx(10.0)  # the image's size does not matter
    est = model.estimate(big, "cuda")
    assert est.seconds == pytest.approx(40.0) and est.memory_mb == pytest.approx(500 + 100 * 0.03)  # 4x the pixels
    # no image under --root (planning on a laptop): the size the manifest lists, else the reference's, said so
    gone = tmp_path / "elsewhere"
    moved = dataclasses.replace(jobs[1], pair=dataclasses.replace(jobs[1].pair, structure=gone / "s.png"))
    native = CostModel([], reference=REF, shapes=SHAPE)
    assert native.estimate(moved, "cuda").size_assumed  # make_dataset's manifest lists no sizes
    listed = tmp_path / "listed.csv"
    listed.write_text("# version: 1\n# name: toy\npair_id,structure,appearance,structure_w,structure_h\n"
                      "p1,toy/p1/structure.png,toy/p1/appearance.png,1200,900\n")
    moved = dataclasses.replace(moved, manifest={**moved.manifest, "path": str(listed)})
    est = CostModel([], reference=REF, shapes=SHAPE).estimate(moved, "cuda")
    assert not est.size_assumed and est.seconds == pytest.approx(2 + 8 * BIG / SMALL)


def test_unknown_costs_are_counted_not_guessed(toy):
    _, jobs, _, _ = toy
    plan = estimate_plan(jobs, CostModel([], reference={}, shapes=SHAPE), ["cuda:0"])
    assert plan.unknown_jobs == 2 and plan.wall_seconds == 0
    assert "2 job(s) of unknown cost not counted" in plan.table()


def test_every_registered_benchmark_method_has_a_shape_and_splice_a_reference():
    from splice.core.registry import METHODS

    assert set(METHODS) <= set(SHAPES)  # the suite's own methods (tests register dummies beside them)
    for kind in ("cpu", "cuda"):
        paper, smoke = REFERENCE[("splice", kind)]
        for ref in (paper, smoke):
            assert ref.seconds_per_step > 0 and ref.memory_mb > 0 and ref.source


def test_a_reference_row_speaks_only_for_the_configuration_it_was_measured_with(toy):
    """A smoke run (ViT-S/16 at 112 px) is not priced as ViT-B/8 at 224 px, nor a B/8 run as a smoke one."""
    _, jobs, _, _ = toy
    b8 = Reference(0.0, 10.0, 500.0, source="b8", applies=(("backbone", "B/8"),))
    s16 = Reference(0.0, 1.0, 100.0, source="s16", applies=(("backbone", "S/16"),))
    model = CostModel([], reference={("dummy", "cuda"): (b8, s16)}, shapes={"dummy": Shape(lambda c: 3.0)})
    job = jobs[0]
    for backbone, seconds, source in (("B/8", 30.0, "b8"), ("S/16", 3.0, "s16")):
        model._cache.clear()
        job.config["backbone"] = backbone
        est = model.estimate(job, "cuda")
        assert est.seconds == pytest.approx(seconds) and est.source == f"reference table ({source})"
    model._cache.clear()
    job.config["backbone"] = "L/14"
    est = model.estimate(job, "cuda")
    assert est.seconds is None and est.memory_mb is None
    assert est.source == ("unknown: no record, and no reference figure for this configuration (backbone=L/14, the "
                          "reference figure is for backbone=B/8; backbone=L/14, the reference figure is for "
                          "backbone=S/16)")  # fmt: skip
    # the suite's own rows: the smoke preset's Splice is priced by the smoke row, not the paper's B/8 one
    suite = CostModel([])
    assert suite._reference("splice", "cpu", {"backbone": "vit_small_patch16_224", "vit_short_side": 112})[0].pixels \
        == 128 * 128
    assert suite._reference("splice", "cuda", {"backbone": "vit_base_patch8_224"})[0].pixels == 512 * 512


def test_dry_run_prints_the_cost_from_a_store_with_known_records(toy, tmp_path, monkeypatch):
    import splice.runner.cost as cost

    monkeypatch.setitem(cost.SHAPES, "dummy", SHAPE["dummy"])
    monkeypatch.setitem(cost.REFERENCE, ("dummy", "cuda"), REF[("dummy", "cuda")])
    req, jobs, root, manifest = toy
    record(tmp_path, "old1", config_hash=jobs[0].key.config_hash, seconds=20.0, memory=1500.0)
    args = ["bench", "--methods", "dummy", "--datasets", str(manifest), "--root", str(root), "--out",
            str(tmp_path / "run"), "--preset", "smoke", "--devices", "cuda:0,cuda:1", "--dry-run"]  # fmt: skip
    r = CliRunner().invoke(cli, [*args, "--json"])  # cuda:0,cuda:1 are taken as given: only planning
    assert r.exit_code == 0, r.output
    rows = {row["pair_id"]: row for row in json.loads(r.stdout)}  # stdout: one JSON row per job, with its cost
    assert rows["p0"]["expected_seconds"] == pytest.approx(20.0)
    assert rows["p1"]["expected_seconds"] == pytest.approx(2 * (2 + 8 * BIG / SMALL))
    assert rows["p1"]["cost_source"] == "1 record(s) of this store, same configuration"
    assert rows["p1"]["expected_memory_mb"] == pytest.approx(1.5 * (1000 + 1000 * (BIG - SMALL) / 1e6))
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0
    assert [ln.split()[0] for ln in r.stdout.splitlines()] == ["pending", "pending"]  # stdout: the jobs only
    assert r.stderr.startswith("note: --devices cuda:0,cuda:1: not all on this machine; planned as given") or \
        not r.stderr.startswith("note:")  # on a machine with two GPUs there is nothing to note
    table = [line for line in r.stderr.splitlines() if not line.startswith("note:")]
    assert table[1].split()[:4] == ["method", "jobs", "s/job", "job"]
    assert table[2].split()[:3] == ["dummy", "2", "1137.0"]
    # two GPUs, one job each: the wall time is the longer job's
    assert "expected wall time: 37:34 min on cuda:0, cuda:1 (one job per device at a time)" in r.stderr
    assert not (tmp_path / "run" / "run.json").exists()  # a dry run writes nothing
    r = CliRunner().invoke(cli, [*args[:-1], "--workers", "2", "--jobs-per-device", "auto"])
    assert isinstance(r.exception, ConfigError) and "give one of them" in str(r.exception)  # main(): one line, exit 2
    assert RunStore(tmp_path / "run").read_record(jobs[0].key) is None
