"""The method contract, for every registered method: declared options and presets, refusal of unknown
options, and (for the methods that run on a CPU in seconds) a smoke run whose record has the suite's schema."""

from __future__ import annotations

import dataclasses

import pytest
from PIL import Image

from baselines.external import SPECS_DIR
from splice.core import options
from splice.core.errors import ConfigError
from splice.core.method import Method, RunSettings
from splice.core.record import SCHEMA
from splice.core.registry import METHODS, methods
from splice.core.store import RunStore
from splice.data.manifests import load_manifest
from splice.runner.execute import run_job
from splice.runner.jobs import PlanRequest, plan_jobs
from tests.support.dummies import make_dataset

NAMES = list(METHODS)
SMOKE = [n for n in NAMES if methods.get_class(n).in_smoke]
#: what a method needs before its options can be read at all
BASE = {"external": {"config": str(SPECS_DIR / "eye-for-an-eye.yaml")}}


@pytest.mark.parametrize("name", NAMES)
def test_options_are_one_typed_dataclass_with_presets(name):
    method = methods.create(name)
    assert isinstance(method, Method) and method.name
    assert dataclasses.is_dataclass(method.option_type())
    assert {"paper", "smoke"} <= set(method.preset_table())
    for preset in options.PRESETS:  # every suite preset resolves (to the method's own or its paper settings)
        assert method.resolved_preset(RunSettings(preset=preset)) in method.preset_table()
    described = method.describe_options()
    assert all({"name", "type", "help", "presets"} <= set(o) for o in described)
    assert {o["name"] for o in described} == set(method.option_names())


@pytest.mark.parametrize("name", NAMES)
def test_unknown_options_and_presets_are_refused(name):
    method = methods.create(name)
    with pytest.raises(ConfigError, match=r"unknown option 'no_such_option'"):
        method.options(RunSettings(options={**BASE.get(name, {}), "no_such_option": "1"}))
    with pytest.raises(ConfigError, match=r"--preset 'smoek' is not a preset; did you mean smoke\?"):
        method.resolved_preset(RunSettings(preset="smoek"))


@pytest.mark.slow
@pytest.mark.parametrize("name", SMOKE)
def test_smoke_run_on_a_tiny_pair_writes_a_schema_record(name, tmp_path):
    root, manifest = make_dataset(tmp_path, 1)
    req = PlanRequest(methods=[name], manifests=[load_manifest(manifest)], root=root, preset="smoke",
                      allow_random_weights=True)  # fmt: skip
    job = plan_jobs(req)[0]
    assert job.settings["preset_resolved"] == "smoke"
    store = RunStore(tmp_path / "run")
    rec = run_job(job, store, "cpu")
    assert rec.ok, rec.error
    assert rec.schema == SCHEMA and rec.job == job.key and rec.config == job.config
    assert rec.settings["preset"] == "smoke" and rec.device == "cpu" and rec.versions["python"]
    assert rec.seconds is not None and rec.peak_memory_mb and rec.inputs["structure"]["sha256"]
    out = Image.open(store.output_path(job.key))
    assert out.mode == "RGB" and list(out.size) == rec.geometry["output"]
    assert rec.geometry["source"] == [96, 80]
    assert store.read_record(job.key) == rec
