"""The one job record (splice.core.record): built by make_record, read back typed, schema 1 upgraded."""

from __future__ import annotations

import json

import pytest

from splice.core.record import SCHEMA, JobKey, JobRecord, make_record
from splice.core.resources import Measurement, versions
from splice.core.store import RunStore

KEY = JobKey(dataset="afhq", pair_id="p1", method="reinhard", seed=2, config_hash="abc123def456")


def test_make_record_fills_what_the_suite_measures(tmp_path):
    m = Measurement(device="cpu", kind="rss_peak", seconds=1.23456, peak_memory_mb=321.04, baseline_mb=100.0)
    rec = make_record(KEY, status="ok", config={"method": "reinhard"}, settings={"preset": "smoke", "seed": 2},
                      output="output.png", geometry={"kind": "identity"}, measurement=m, device="cpu",
                      info={"random_weights": True, "weights": {"spec": "random"}, "extra": 1},
                      invocation={"id": "inv", "git": {"sha": "abc"}})  # fmt: skip
    assert rec.schema == SCHEMA == 2 and rec.ok and rec.seed == 2 and rec.preset == "smoke"
    assert (rec.seconds, rec.seconds_total, rec.peak_memory_mb, rec.peak_memory_baseline_mb) == (
        1.235,
        1.235,
        321.0,
        100.0,
    )
    assert rec.random_weights is True and rec.weights == {"spec": "random"} and rec.info["extra"] == 1
    assert rec.versions == versions() and "pillow" in rec.versions and "host" not in rec.versions
    assert rec.host and rec.pid and rec.finished and rec.invocation == "inv" and rec.git == {"sha": "abc"}
    store = RunStore(tmp_path)
    store.write_record(KEY, rec)
    on_disk = json.loads(store.record_path(KEY).read_text())
    assert list(on_disk)[:3] == ["schema", "status", "job"] and on_disk["job"] == KEY.to_dict()
    assert store.read_record(KEY) == rec
    with pytest.raises(ValueError, match="record of reinhard/afhq/p1"):
        store.write_record(JobKey("afhq", "p2", "reinhard", 2, "abc123def456"), rec)


def test_a_failure_keeps_no_output_or_geometry():
    rec = make_record(KEY, status="failed", output="output.png", geometry={"kind": "identity"}, error="boom",
                      error_type="RuntimeError")  # fmt: skip
    assert (rec.output, rec.geometry, rec.error, rec.seconds) == (None, None, "boom", None)
    with pytest.raises(ValueError, match="status must be one of"):
        make_record(KEY, status="done")


def test_schema_1_records_are_read_and_upgraded():
    old = {"schema": 1, "status": "ok", "job": KEY.to_dict(), "output": "output.png", "seconds": 2.0,
           "versions": {"python": "3.11", "PIL": "10.0", "host": "gpu7"}, "unknown_field": 1}  # fmt: skip
    rec = JobRecord.from_dict(old)
    assert rec.schema == 1 and rec.host == "gpu7" and rec.versions == {"python": "3.11", "pillow": "10.0"}
    assert rec.job == KEY and rec.seconds == 2.0 and rec.pair == {} and rec.attempts == []


@pytest.mark.parametrize("bad", [{}, {"status": "ok"}, {"job": KEY.to_dict(), "status": "maybe"}, []])
def test_what_is_not_a_record(bad):
    with pytest.raises((ValueError, KeyError, TypeError)):
        JobRecord.from_dict(bad)


def test_unreadable_record_counts_as_absent(tmp_path):
    store = RunStore(tmp_path)
    store.record_path(KEY).parent.mkdir(parents=True)
    store.record_path(KEY).write_text('{"status": "ok", "job": ')
    assert store.read_record(KEY) is None and not store.is_done(KEY)
