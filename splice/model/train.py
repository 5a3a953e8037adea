"""Splice's training loop: one generator trained on one pair, checkpointed and resumable.

:func:`train_splice` runs ``cfg.steps`` Adam steps of :class:`~splice.model.objective.SpliceObjective`
and returns G(S) on the full, un-augmented structure image. With a ``workdir`` it saves a
checkpoint (generator, optimiser, sampler RNG, step, loss history) atomically every
``cfg.checkpoint_every`` steps and at the end; started again on the same inputs and
configuration it continues from the last checkpoint, and (on the CPU) ends with the same
bytes as an uninterrupted run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from splice.core.atomic import atomic_torch_save
from splice.core.errors import UserError
from splice.core.resources import PeakMemory
from splice.model.augment import PairSampler
from splice.model.generator import build_generator
from splice.model.objective import SpliceObjective
from splice.model.vit import ViTExtractor

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"


class TrainingStopped(Exception):
    """Raised when ``stop_after`` steps are done (a checkpoint was written first)."""

    def __init__(self, step: int):
        super().__init__(f"stopped at step {step}")
        self.step = step


@dataclass
class TrainResult:
    output: torch.Tensor  # (1, 3, H, W) in [0, 1], on the CPU
    final_terms: dict[str, float]
    last_entire_terms: dict[str, float]
    history: list[list[float]]  # [step, total loss] every step
    steps: int
    resumed_from: int
    seconds_total: float  # across all invocations
    seconds_this_run: float
    seconds_per_step: float  # this invocation, excluding the first step (warm-up)
    peak_memory_mb: float
    checkpoint: str | None = None
    snapshots: list[str] = field(default_factory=list)


def generator_memory_format(device, precision: str = "fp32", setting: str = "auto") -> torch.memory_format:
    """The generator's memory layout: ``setting`` is ``auto``, ``channels-last`` or ``nchw``.

    ``auto`` = channels-last on CUDA (the usual cuDNN win) and for bf16 on the CPU (measured with
    ``make perf``: HD step 2.35 s instead of 2.80 s), and the default layout for fp32 on the CPU.
    There channels-last would save 15% at HD (4.14 s instead of 4.88 s) but the CPU's
    channels-last BatchNorm loses precision (training-mode output 2.5e-4 from float64 instead
    of 8e-7 on activations whose mean is large against their spread; whole-generator weight
    gradients 4x further from float64), so fp32 would no longer compute what the reference
    computes to float precision; ``--memory-format channels-last`` opts in.
    """
    if setting == "channels-last":
        return torch.channels_last
    if setting == "nchw":
        return torch.contiguous_format
    dev = torch.device(device).type
    return torch.channels_last if dev == "cuda" or (dev == "cpu" and precision == "bf16") else torch.contiguous_format


def _generator_output(G, image: torch.Tensor, objective: SpliceObjective) -> torch.Tensor:
    with torch.no_grad(), objective.amp():
        return G(image).float().clamp(0, 1).cpu()


def _fingerprint_ok(ckpt: dict, fingerprint: dict) -> str | None:
    for k, v in fingerprint.items():
        if ckpt.get("fingerprint", {}).get(k) != v:
            return k
    return None


def train_splice(
    structure: torch.Tensor,
    appearance: torch.Tensor,
    cfg,
    extractor: ViTExtractor,
    *,
    seed: int = 0,
    device: str = "cpu",
    workdir: Path | None = None,
    resume: bool = True,
    fingerprint: dict | None = None,
    progress: bool = False,
    snapshot: Callable[[int, torch.Tensor], str | None] | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Train Splice's generator on (structure, appearance): (1, 3, H, W) tensors in [0, 1].

    Args:
        cfg: a :class:`splice.model.config.SpliceConfig`.
        extractor: the frozen ViT (see :func:`splice.model.vit.load_vit`), already on ``device``.
        seed: seeds the generator's initialisation and every augmentation.
        workdir: where ``checkpoint.pt`` lives; ``None`` disables checkpoints.
        resume: continue from ``workdir/checkpoint.pt`` when it exists.
        fingerprint: identity of the inputs and config; a checkpoint with another fingerprint is refused.
        snapshot: called as ``snapshot(step, output)`` every ``cfg.save_every`` steps.
        stop_after: stop (after checkpointing) once this many steps are done in this call
            (tests use it to simulate a killed run).
    """
    dev = torch.device(device)
    fingerprint = {"config_hash": cfg.hash(), "seed": int(seed), **(fingerprint or {})}
    S = structure.to(dev)
    T = appearance.to(dev)
    memory_format = generator_memory_format(dev, cfg.precision, cfg.memory_format)
    S, T = S.contiguous(memory_format=memory_format), T.contiguous(memory_format=memory_format)
    G = build_generator(seed).to(dev, memory_format=memory_format)
    G.train()  # BatchNorm always uses batch statistics, also for the output
    opt = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    sampler = PairSampler(S, T, cfg, seed=seed + 1)
    objective = SpliceObjective(extractor, cfg, S, precision=cfg.precision)
    G_run = G
    if cfg.compile:
        if dev.type == "cpu":  # measured: the first steps take minutes of Inductor compilation on a 2-core CPU
            log.warning(
                "--compile on the CPU spends minutes compiling before the first step; it pays off on CUDA")
        G_run = torch.compile(G, dynamic=True)  # crop sizes change every step: one dynamic graph, not one per size

    start, history, elapsed_before = 0, [], 0.0
    final_terms: dict[str, float] = {}
    last_entire: dict[str, float] = {}
    ckpt_path = Path(workdir) / CHECKPOINT if workdir else None
    if ckpt_path is not None and resume and ckpt_path.exists():
        try:
            ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        except Exception as e:
            raise UserError(f"checkpoint {ckpt_path} is unreadable ({e}); delete it to start over") from None
        bad = _fingerprint_ok(ckpt, fingerprint)
        if bad:
            raise UserError(
                f"checkpoint {ckpt_path} was made with a different {bad}; use another output folder or delete it"
            )
        G.load_state_dict(ckpt["G"])
        opt.load_state_dict(ckpt["opt"])
        sampler.set_state(ckpt["rng"])
        start, history = int(ckpt["step"]), list(ckpt["history"])
        elapsed_before = float(ckpt.get("elapsed", 0.0))
        final_terms, last_entire = ckpt.get("final_terms", {}), ckpt.get("last_entire", {})
        log.info("resuming from step %d (%s)", start, ckpt_path)

    def save_checkpoint(next_step: int, elapsed: float) -> None:
        if ckpt_path is None:
            return
        atomic_torch_save(ckpt_path, {
            "step": next_step, "G": G.state_dict(), "opt": opt.state_dict(), "rng": sampler.state(),
            "history": history, "elapsed": elapsed, "fingerprint": fingerprint,
            "final_terms": final_terms, "last_entire": last_entire,
        })

    memory = PeakMemory(device)
    memory.reset()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=start, desc="splice", unit="step", dynamic_ncols=True, leave=True)
    snapshots: list[str] = []
    t0 = time.perf_counter()
    t_first = None
    done_here = 0
    for step in range(start, cfg.steps):
        crops = sampler.sample(step)
        opt.zero_grad(set_to_none=True)
        loss, terms = objective(G_run, crops)
        loss.backward()
        opt.step()
        done_here += 1
        if t_first is None:
            t_first = time.perf_counter()
        values = {k: float(v) for k, v in terms.items()}
        history.append([step, float(loss.detach())])
        final_terms = {k: v for k, v in values.items() if not k.startswith("entire")}
        if any(k.startswith("entire") for k in values):
            last_entire = {k: v for k, v in values.items() if k.startswith("entire")}
        if bar is not None:
            bar.set_postfix({k[:6]: f"{v:.4f}" for k, v in values.items()}, refresh=False)
            bar.update(1)
        if snapshot is not None and cfg.save_every and (step + 1) % cfg.save_every == 0 and step + 1 < cfg.steps:
            path = snapshot(step + 1, _generator_output(G_run, S, objective))
            if path:
                snapshots.append(path)
        last = step + 1 == cfg.steps
        stopping = stop_after is not None and done_here >= stop_after
        if (cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0) or last or stopping:
            save_checkpoint(step + 1, elapsed_before + time.perf_counter() - t0)
        if stopping and not last:
            if bar is not None:
                bar.close()
            raise TrainingStopped(step + 1)
    if bar is not None:
        bar.close()
    t_end = time.perf_counter()
    output = _generator_output(G_run, S, objective)
    seconds_this = time.perf_counter() - t0
    per_step = (t_end - t_first) / (done_here - 1) if done_here > 1 and t_first else seconds_this / max(done_here, 1)
    return TrainResult(
        output=output, final_terms=final_terms, last_entire_terms=last_entire, history=history,
        steps=cfg.steps, resumed_from=start, seconds_total=elapsed_before + seconds_this,
        seconds_this_run=seconds_this, seconds_per_step=per_step, peak_memory_mb=memory.read_mb() or 0.0,
        checkpoint=str(ckpt_path) if ckpt_path else None, snapshots=snapshots,
    )
