"""A run store broken in every way issue 13 names, made by the real runner (``dummy`` and ``nomaxside``).

``broken_run(tmp_path)`` returns a :class:`Broken` whose store ``out`` holds, on the ``toy`` data set
(pairs p0..p3):

======  ==================================================================================
dummy   p0: record.json truncated (corrupt); p1: output.png deleted (output missing);
        p2: done; p3: failed (``fail_on``)
nomax   every job planned by a second bench that was killed before running any (pending),
        p1's with a claim left by a process that is gone (stale): a method with no finished job
======  ==================================================================================

The first bench ran as ``splice bench --methods dummy ...``; the killed one as ``splice bench --methods
dummy,nomaxside ...`` (both in ``run.json``), so the commands that fix the jobs are known.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from splice.core.store import RunStore
from splice.data.manifests import load_manifest
from splice.runner import LaunchOptions, PlanRequest, bench, plan_jobs
from splice.runner.runlog import append_invocation, new_invocation
from splice.runner.status import write_job_specs
from tests.support.dummies import make_dataset
from tests.support.store import dead_pid


@dataclass
class Broken:
    out: Path
    root: Path
    manifest: Path
    jobs: dict[tuple[str, str], object]  # (method, pair) -> Job
    argv: list[str]  # the killed bench's command line

    def key(self, method: str, pair: str):
        return self.jobs[(method, pair)].key

    def job_dir(self, method: str, pair: str) -> Path:
        return RunStore(self.out).job_dir(self.key(method, pair))


def broken_run(tmp_path: Path) -> Broken:
    root, manifest = make_dataset(tmp_path, 4)
    out = tmp_path / "run"
    opts = {"dummy": {"fail_on": "p3"}}
    req = PlanRequest(methods=["dummy"], manifests=[load_manifest(manifest)], root=root, preset="smoke",
                      options=opts)  # fmt: skip
    first = ["splice", "bench", "--methods", "dummy", "--datasets", str(manifest), "--root", str(root), "--out",
             str(out), "--preset", "smoke", "--method-args", "dummy.fail_on=p3"]  # fmt: skip
    bench(req, LaunchOptions(out=out, devices=["cpu"], workers=0, progress=False), argv=first)

    # a second bench, over both methods, killed right after planning (run.json entry and job.json written)
    both = PlanRequest(methods=["dummy", "nomaxside"], manifests=req.manifests, root=root, preset="smoke",
                       options=opts)  # fmt: skip
    jobs = plan_jobs(both)
    argv = [*first[:3], "dummy,nomaxside", *first[4:]]
    settings = {**both.to_dict(), "out": str(out), "devices": ["cpu"], "keep_work": False}
    append_invocation(out, new_invocation(settings, [m.record() for m in both.manifests], argv))
    write_job_specs(RunStore(out), jobs)
    by = {(j.key.method, j.key.pair_id): j for j in jobs}
    store = RunStore(out)
    # its runner died while holding nomaxside p1
    claim = store.job_dir(by[("nomaxside", "p1")].key) / "claim.json"
    claim.write_text(json.dumps({"host": socket.gethostname(), "pid": dead_pid(), "start_ticks": None,
                                 "boot_id": None, "slurm_task": None, "token": "x"}))  # fmt: skip
    # and the finished ones broke
    record = store.record_path(by[("dummy", "p0")].key)
    record.write_bytes(record.read_bytes()[:100])  # truncated
    os.unlink(store.output_path(by[("dummy", "p1")].key))
    return Broken(out, root, manifest, by, argv)
