"""Methods that declare which data sets they apply to (``Method.datasets``): per-data-set options change the job's
configuration, and a job of a data set the method does not apply to is recorded ``not-applicable`` (never run),
shown so by ``bench --dry-run`` and ``bench status``, and left out of failures, tables and grids."""

from __future__ import annotations

import pytest

from splice.core.errors import UserError
from splice.core.method import NotApplicableError, Pair, RunSettings
from splice.core.record import JobRecord
from splice.core.registry import methods
from splice.core.store import RunStore
from splice.data.manifests import load_manifest
from splice.runner import LaunchOptions, PlanRequest, bench, dry_run, plan_jobs
from splice.runner.bench import missing_inputs
from splice.runner.jobs import Job, dataset_settings
from splice.runner.status import counts, scan
from tests.support.dummies import events, make_dataset, register


@pytest.fixture(autouse=True)
def _dummies(monkeypatch):
    from tests.support.dummies import ensure_importable

    ensure_importable(monkeypatch)
    register()


@pytest.fixture
def req(tmp_path):
    _, toy = make_dataset(tmp_path, 2, name="toy")
    root, wild = make_dataset(tmp_path, 2, name="wild")
    _, plain = make_dataset(tmp_path, 1, name="plain")
    log = tmp_path / "events.log"
    return PlanRequest(methods=["picky"], manifests=[load_manifest(m) for m in (toy, wild, plain)], root=root,
                       preset="smoke", options={"picky": {"log": str(log)}})  # fmt: skip


def test_the_method_declares_options_per_data_set():
    picky = methods.create("picky")
    assert picky.options(RunSettings(dataset="toy")).sleep == 0.01
    assert picky.options(RunSettings(dataset="plain")).sleep == 0.0  # not declared: the preset's options
    assert picky.options(RunSettings(dataset="toy", options={"sleep": "0"})).sleep == 0.0  # --method-args win
    assert picky.options(RunSettings()).sleep == 0.0  # ad-hoc pair
    assert picky.not_applicable("wild") == "no model for wild images" and picky.not_applicable("toy") is None
    with pytest.raises(NotApplicableError, match="picky does not apply to data set wild: no model for wild images"):
        picky.options(RunSettings(dataset="wild"))
    assert issubclass(NotApplicableError, UserError)


def test_planning_gives_each_data_set_its_configuration_and_marks_not_applicable(req):
    jobs = plan_jobs(req)
    by = {j.key.dataset: j for j in jobs}
    assert by["toy"].config["sleep"] == 0.01 and by["plain"].config["sleep"] == 0.0
    assert by["toy"].settings["dataset_options"] == {"sleep": 0.01} and "dataset_options" not in by["plain"].settings
    assert len({j.key.config_hash for j in jobs}) == 3
    wild = [j for j in jobs if j.key.dataset == "wild"]
    assert len(wild) == 2 and all(j.not_applicable == "no model for wild images" for j in wild)
    assert wild[0].config == {"method": "picky", "version": "1", "not_applicable": "no model for wild images"}
    assert Job.from_dict(wild[0].to_dict()) == wild[0]  # crosses process boundaries
    assert by["toy"].run_settings("cpu", None).dataset == "toy"
    assert dataset_settings(req) == [
        {"method": "picky", "dataset": "toy", "options": {"sleep": 0.01}},
        {"method": "picky", "dataset": "wild", "not_applicable": "no model for wild images"},
    ]


def test_bench_records_not_applicable_jobs_without_running_them(req, tmp_path):
    out = tmp_path / "run"
    planned = dry_run(req, out)
    assert sorted(p.state for p in planned) == ["not-applicable"] * 2 + ["pending"] * 3
    na = next(p for p in planned if p.state == "not-applicable")
    assert na.action == "skip (the method does not apply to this data set)"
    assert na.row()["not_applicable"] == "no model for wild images"
    for p in (tmp_path / "data" / "wild").rglob("*.png"):  # never needed: the method does not run on them
        p.unlink()
    assert missing_inputs(req) == []

    summary = bench(req, LaunchOptions(out=out, devices=["cpu"], workers=0, progress=False))
    assert summary.done == 3 and summary.not_applicable == 2 and summary.failed_total == 0
    assert "n/a" in summary.table()
    starts = [pair for event, pair in events(tmp_path / "events.log") if event == "start"]
    assert sorted(starts) == ["p0", "p0", "p1"]  # toy p0, p1 and plain p0; wild never ran
    states = scan(RunStore(out))
    assert counts(states)["not-applicable"] == 2 and counts(states)["done"] == 3
    rec = next(s.record for s in states if s.state == "not-applicable")
    assert isinstance(rec, JobRecord) and rec.status == "not-applicable" and rec.output is None
    assert rec.error == "no model for wild images" and rec.info["not_applicable"] == rec.error
    assert not RunStore(out).output_path(rec.job).exists()

    again = bench(req, LaunchOptions(out=out, devices=["cpu"], workers=0, progress=False))
    assert again.not_applicable == 2 and again.skipped_done == 3 and again.done == 0


def test_running_a_not_applicable_method_directly_is_a_one_line_error(tiny_pair):
    pair = Pair("p", *tiny_pair, dataset="wild")
    with pytest.raises(NotApplicableError):
        methods.create("picky").run(pair, RunSettings(dataset="wild"))
