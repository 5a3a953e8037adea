"""``splice bench import``: outputs that already exist filed into a run store as jobs of ``precomputed``."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from splice.core.imageio import sha256_file
from splice.core.method import Pair
from splice.core.store import RunStore
from splice.data.manifests import load_manifest
from splice.runner.importing import import_outputs
from tests.support.precomputed import authors_layout


@pytest.fixture
def layout(tmp_path):
    return authors_layout(tmp_path)


def _manifest(path: Path, pairs: list[Pair]) -> Path:
    """A project manifest (datasets/README.md format) whose paths are relative to the layout's data/ folder."""
    with open(path, "w", newline="") as f:
        f.write("# splice-bench manifest\n# name: afhq\n# version: 1\n")
        w = csv.writer(f)
        w.writerow(["pair_id", "structure", "structure_sha256", "appearance", "appearance_sha256"])
        for p in pairs:
            w.writerow(
                [p.pair_id, p.structure.name, sha256_file(p.structure), p.appearance.name, sha256_file(p.appearance)]
            )
    return path


def test_import_into_run_store_with_manifest_ids(layout, tmp_path):
    paper, pairs = layout
    manifest = load_manifest(_manifest(tmp_path / "afhq.csv", pairs[:2]))  # folder 2 is unknown to this manifest
    out = tmp_path / "runs" / "paper"
    rows = import_outputs(paper, manifest, out, "sa")
    assert [(r.pair_id, r.method, r.state) for r in rows] == [
        ("afhq-00", "paper-sa", "done"),
        ("afhq-01", "paper-sa", "done"),
    ]
    records = dict(RunStore(out).iter_records())
    assert {k.pair_id for k in records} == {"afhq-00", "afhq-01"} and {k.method for k in records} == {"paper-sa"}
    key = next(k for k in records if k.pair_id == "afhq-01")
    rec = records[key]
    assert rec.ok and rec.output == "output.png" and rec.random_weights is False
    assert rec.geometry == {"kind": "center-crop", "source": [120, 80], "box": [20, 0, 100, 80], "output": [64, 64]}
    assert rec.inputs["structure"]["sha256"] == sha256_file(pairs[1].structure)
    assert rec.pair["structure"] == str(paper / "1" / "A" / "img.png")
    assert rec.pair["manifest"] == {"name": "afhq", "version": 1, "line": 6, "path": str(manifest.path)}
    assert rec.info["label"] == "paper-sa" and rec.info["precomputed"]["matched_by"] == "hash"
    assert rec.settings["options"]["method_dir"] == "sa"
    saved = Image.open(RunStore(out).output_path(key))
    assert np.array_equal(np.asarray(saved), np.asarray(Image.open(paper / "1" / "sa" / "out.png").convert("RGB")))
    again = import_outputs(paper, manifest, out, "sa")
    assert [r.state for r in again] == ["skipped", "skipped"]  # resumable like any benchmark job
    root = tmp_path / "elsewhere"
    with_root = import_outputs(paper, manifest, tmp_path / "runs" / "b", "sa", data_root=pairs[0].structure.parent)
    assert [r.state for r in with_root] == ["done", "done"]
    rec = dict(RunStore(tmp_path / "runs" / "b").iter_records())
    assert {r.pair["structure"] for r in rec.values()} == {str(pairs[0].structure), str(pairs[1].structure)}
    assert not root.exists()


def test_import_failure_becomes_failed_record(layout, tmp_path):
    paper, pairs = layout
    (paper / "1" / "sa" / "out.png").unlink()
    manifest = load_manifest(_manifest(tmp_path / "afhq.csv", pairs))
    rows = import_outputs(paper, manifest, tmp_path / "runs", "sa")
    assert [r.state for r in rows] == ["done", "failed", "done"]
    assert "no image in" in rows[1].error


def _splice(*args):
    return subprocess.run([sys.executable, "-m", "splice", *map(str, args)], capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_import_command(layout, tmp_path):
    paper, pairs = layout
    manifest = _manifest(tmp_path / "afhq.csv", pairs)
    out = tmp_path / "runs"
    r = _splice("bench", "import", "--from", paper, "--dataset", manifest, "--method-dir", "ours", "--out", out,
                "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["pair_id"] for row in rows] == ["afhq-00", "afhq-01", "afhq-02"] and rows[0]["method"] == "paper-ours"
    assert "imported 3/3 outputs" in r.stderr
    bad = _splice("bench", "import", "--from", tmp_path / "nope", "--dataset", manifest, "--method-dir", "ours",
                  "--out", out)  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.strip() == f"error: --from {tmp_path / 'nope'} is not a folder"
    assert "bench import" in _splice("--help").stdout or "import" in _splice("bench", "--help").stdout
