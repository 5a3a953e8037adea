"""`splice table`, `score`, `report` and `study export` on a killed and broken run: every job without a result is
named by its state (never "failed" for an output gone, never dropped), and a filter that matches nothing is a
one-line error."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from eval.scoring import ScoreOptions, score_run
from splice.cli import main
from splice.core.errors import ConfigError
from tests.support.broken import broken_run


@pytest.fixture(autouse=True)
def _dummies(monkeypatch):
    from tests.support.dummies import ensure_importable, register

    ensure_importable(monkeypatch)
    register()


@pytest.fixture
def broken(tmp_path):
    return broken_run(tmp_path)


def invoke(*args: str):
    """``splice ARGS`` in this process, through ``main`` (one-line errors, exit codes)."""
    return CliRunner().invoke(main_command, [str(a) for a in args])


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def main_command(ctx):
    main(ctx.args)


def test_table_counts_and_names_jobs_without_a_result(broken):
    r = invoke("table", "--out", broken.out, "--metric", "seconds")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].startswith("> **RANDOM WEIGHTS")  # the dummy's records say random weights
    assert lines[2].endswith("| excluded | failed | unfinished |")
    # dummy: p2 done, p3 failed, p0 corrupt and p1 output missing unfinished (not failed); nomaxside: nothing done
    assert "| toy | dummy | – | 0 | 0.0 ± – | 1 | – | 0 | 1 | 2 |" in lines
    assert "| toy | nomaxside | – | 0 | – | 0 | – | 0 | 0 | 4 |" in lines
    assert "toy: no common pairs (nomaxside has no value); leave methods out with --methods to compare the rest" \
        in lines  # fmt: skip
    assert lines[-1] == ("Not in these numbers: 1 stale claim, 3 pending, 1 corrupt record, 1 output missing (jobs "
                         "without a result yet; `splice bench status` names each with the command that fixes it).")
    err = r.stderr
    assert f"to fix, run the bench again: {' '.join(broken.argv)}" in err
    assert f"{broken.job_dir('dummy', 'p0') / 'record.json'}  (record.json is not JSON" in err
    assert f"{broken.job_dir('dummy', 'p1') / 'output.png'}  (the record says ok but the output file is gone)" in err
    csv = invoke("table", "--out", broken.out, "--metric", "seconds", "--format", "csv", "--methods", "nomaxside")
    assert csv.stdout.splitlines()[1].startswith("toy,nomaxside,0,") and ",False,4,seconds" in csv.stdout
    assert "/nomaxside/" in csv.stderr and "/dummy/" not in csv.stderr  # only the selection's jobs are listed


@pytest.mark.parametrize("args,message", [
    (["table", "--methods", "nosuch"], "--methods nosuch: not in run {out}; it holds: dummy, nomaxside"),
    (["table", "--datasets", "toy,nope"], "--datasets nope: not in run {out}; it holds: toy"),
    (["report", "--methods", "dummy,nosuch"], "--methods nosuch: not in run {out}; it holds: dummy, nomaxside"),
    (["score", "--methods", "nosuch"], "--methods nosuch: not in run {out}; it holds: dummy, nomaxside"),
    (["score", "--datasets", "nope"], "--datasets nope: not in run {out}; it holds: toy"),
])  # fmt: skip
def test_a_filter_that_matches_nothing_is_a_one_line_error(broken, args, message):
    r = invoke(args[0], "--out", broken.out, *args[1:])
    assert r.exit_code == 2
    assert r.stderr == f"error: {message.format(out=broken.out)}\n" and r.stdout == ""


def test_score_counts_what_it_could_not_score(broken, tmp_path):
    from eval.cache import FeatureCache
    from eval.layout import CachedDetector
    from eval.vit_metrics import CachedViT
    from tests.support.fakes import ColourDetector, TinyExtractor

    models = {"iou": CachedDetector(ColourDetector(), FeatureCache(tmp_path / "c", "masks", "x")),
              "vit": CachedViT(TinyExtractor(), FeatureCache(tmp_path / "c", "vit", "tiny"))}
    summary = score_run(broken.out, ScoreOptions(), models=models)
    assert summary.jobs == 1 and summary.scored == {"iou": 1, "panoptic": 0, "vit": 1}
    assert summary.missing_outputs == [str(broken.key("dummy", "p1"))]
    assert summary.not_scored == {"failed": 1, "stale": 1, "pending": 3, "corrupt": 1, "output-missing": 1}
    with pytest.raises(ConfigError, match="--methods nosuch: not in run"):
        score_run(broken.out, ScoreOptions(methods=["nosuch"]), models=models)


def test_study_export_refuses_a_data_set_the_run_does_not_hold(tmp_path):
    from eval.study.export import export_study
    from tests.support.report_store import build_store
    from tests.support.study import export_settings

    build_store(tmp_path / "x")
    with pytest.raises(ConfigError, match=r"data set\(s\) nope not in the run store"):
        export_study(export_settings(tmp_path, run_dir=tmp_path / "x" / "run", datasets=["nope"]))


def test_status_of_a_read_only_store_still_prints(broken, monkeypatch):
    """A finished run on a read-only mount: status is read from the store; jobs.csv not being rewritten is a
    warning, not a traceback (root ignores file modes, so the write fails as a read-only mount makes it fail)."""
    import errno

    import splice.runner.status as status

    def read_only(store, states):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(status, "write_jobs_csv", read_only)
    r = invoke("bench", "status", "--out", broken.out)
    assert r.exit_code == 0, r.output
    assert f"warning: jobs.csv not updated (Read-only file system: {broken.out / 'jobs.csv'})" in r.stderr
    assert "1 corrupt record" in r.stdout and "jobs: " not in r.stderr


def test_dry_run_prices_every_job_it_would_run(broken):
    """Corrupt records and missing outputs are rerun, so the dry run counts and prices them like pending ones."""
    import json

    r = invoke(*broken.argv[1:], "--dry-run", "--json")
    assert r.exit_code == 0, r.output
    rows = {(row["method"], row["pair_id"]): row for row in json.loads(r.stdout)}
    for key in (("dummy", "p0"), ("dummy", "p1"), ("nomaxside", "p0")):  # corrupt, output missing, pending
        assert rows[key]["state"] in ("corrupt", "output-missing", "pending", "stale"), rows[key]
        assert "expected_seconds" in rows[key] and rows[key]["cost_source"], rows[key]
    assert "expected_seconds" not in rows[("dummy", "p2")]  # done: skipped
    assert "would run 6, skip 1 done, 1 failed" in r.stderr
