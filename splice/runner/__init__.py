"""The benchmark runner: every method over every pair of the Splice paper's data sets
(Tumanyan et al., CVPR 2022), resumable, on one machine or a SLURM cluster.

Public API::

    from splice.runner import PlanRequest, LaunchOptions, bench, dry_run, plan_jobs, run_job, execute

Modules: :mod:`.jobs` (planning), :mod:`.execute` (one job: timing, memory, OOM ladder,
records), :mod:`.claims` (no job runs twice), :mod:`.local` and :mod:`.slurm` (launchers),
:mod:`.packing` (jobs packed by memory), :mod:`.cost` (expected seconds, memory and wall time),
:mod:`.status` (job states, ``jobs.csv``), :mod:`.runlog` (``run.json``), :mod:`.runner`
(the whole ``splice bench`` call).
"""

from splice.core.claims import Claim  # noqa: F401
from splice.runner.bench import BenchSummary, LaunchOptions, bench, dry_run, estimate_cost, missing_inputs  # noqa: F401
from splice.runner.cost import CostModel, CostPlan, estimate_plan  # noqa: F401
from splice.runner.execute import OOM_LADDER, Outcome, execute, run_job  # noqa: F401
from splice.runner.jobs import (  # noqa: F401
    Job,
    PlanRequest,
    expand_methods,
    method_overrides,
    parse_seeds,
    parse_weights,
    plan_jobs,
)
from splice.runner.packing import Packer, Packing, PackingPolicy, parse_jobs_per_device  # noqa: F401
from splice.runner.slurm import SlurmOptions  # noqa: F401
from splice.runner.status import job_state, scan, write_jobs_csv  # noqa: F401
