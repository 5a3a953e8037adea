"""`splice methods`: what each method needs and whether it is READY on this machine."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

from click.testing import CliRunner

from splice.cli.methods import command
from splice.core.devices import available_devices
from splice.core.method import Method, Requirement
from splice.core.registry import methods
from splice.runner.readiness import all_statuses
from tests.support import PROJECT


@dataclass(frozen=True)
class FakeOptions:
    weights_dir: str = "/nowhere"


class NeedsGpuAndWeights(Method):
    name = "fake-gpu"
    paper = "Someone, A GPU Method, 2099"
    devices = ("cuda",)
    Options = FakeOptions

    def requirements(self, settings):
        where = self.options(settings).weights_dir
        return [
            Requirement(name="fake weights", how=f"download fake.pth into {where}", ready=where == "/here", path=where)
        ]

    def run(self, pair, settings):  # pragma: no cover - never run
        raise NotImplementedError


def _register(monkeypatch, name, target):
    monkeypatch.setitem(methods._entries, name, target)


def test_statuses_ready_and_not_ready(monkeypatch):
    _register(monkeypatch, "fake-gpu", f"{__name__}:NeedsGpuAndWeights")
    _register(monkeypatch, "broken", "baselines.no_such_module:Nope")
    st = {s.name: s for s in all_statuses(["reinhard", "fake-gpu", "broken", "external"])}
    assert st["reinhard"].ready and st["reinhard"].needs == [] and st["reinhard"].in_smoke
    fake = st["fake-gpu"]
    assert not fake.ready and fake.devices == ["cuda"]
    assert "fake weights: download fake.pth into /nowhere" in fake.problems
    if "cuda" not in available_devices():
        assert fake.devices_here == [] and any(p.startswith("needs cuda; this machine has cpu") for p in fake.problems)
    assert not st["broken"].ready
    assert "cannot load baselines.no_such_module:Nope: ModuleNotFoundError" in st["broken"].problems[0]
    assert not st["external"].ready and "--method-args config=path.yaml" in st["external"].needs[0]["how"]
    # --method-args reach the readiness checks
    fake2 = all_statuses(["fake-gpu"], overrides={"fake-gpu": {"weights_dir": "/here"}})[0]
    assert fake2.needs[0]["ready"] is True


def test_cli_table_json_and_errors(monkeypatch):
    _register(monkeypatch, "fake-gpu", f"{__name__}:NeedsGpuAndWeights")
    runner = CliRunner()
    res = runner.invoke(command, ["reinhard", "histogram", "fake-gpu", "-a"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].split()[:5] == ["METHOD", "STATUS", "DEVICES", "SETS", "NEEDS"]
    row = {line.split()[0]: line for line in lines[1:4]}
    assert "READY" in row["reinhard"] and "NOT READY" not in row["reinhard"] and "all,smoke" in row["reinhard"]
    assert "NOT READY" in row["fake-gpu"] and "fake weights (missing)" in row["fake-gpu"]
    assert "  fake-gpu: fake weights: download fake.pth into /nowhere" in res.stdout
    res = runner.invoke(command, ["fake-gpu", "--json", "--method-args", "weights_dir=/here"])
    data = json.loads(res.stdout)
    assert data[0]["needs"] == [
        {"name": "fake weights", "ready": True, "how": "download fake.pth into /here", "path": "/here"}
    ]
    res = runner.invoke(command, ["reinhardt"])
    assert res.exit_code != 0 and "did you mean reinhard" in str(res.exception)


def test_cli_subprocess_json():
    proc = subprocess.run([sys.executable, "-m", "splice", "methods", "reinhard", "histogram", "precomputed", "--json"],
                          cwd=PROJECT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = {d["name"]: d for d in json.loads(proc.stdout)}
    assert data["reinhard"]["ready"] and data["histogram"]["ready"]
    assert data["precomputed"]["ready"] is False and "root=DIR" in data["precomputed"]["problems"][0]
