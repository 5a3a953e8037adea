"""Metric tables: every method of a data set compared on the same pairs, with the counts behind them.

The Splice paper (Tumanyan et al., CVPR 2022, Table 2) reports the layout IoU as mean ± std per data set.
PROTOCOL.md (version 2) asks for more: exclusions are decided per job (the aligned structure image of a centre
crop may lose the object) and failed jobs drop out, so means over each method's own pairs come from different
pairs. Here, per data set, over the rows of :func:`eval.aggregate.load_results`:

- a **pair's value** for a method is the mean over that method's jobs of the pair (its seeds);
- **common pairs**: the pairs for which *every* method of the table (``--methods``, default all in the data
  set) has a value. ``n_common``, ``mean_common``, ``std_common`` (sample std, ``ddof=1``; NaN below two pairs)
  are the headline, and the same pairs for every method of a data set; the **best** method (``best``, bold)
  is chosen on ``mean_common`` only;
- ``n_all``, ``mean_all``, ``std_all``: over all of the method's own pairs (secondary);
- ``diff_vs_reference``: the paired mean difference ``method - reference`` over the common pairs, with a
  paired bootstrap 95% interval (``diff_ci_low``, ``diff_ci_high``: percentiles of the mean difference over
  :data:`N_BOOT` resamples of the common pairs with replacement, seed :data:`BOOT_SEED`); the reference
  method is ``splice`` unless ``reference`` names another, and its own row and data sets without it show NaN;
- ``excluded`` (jobs the protocol excludes: no detection / no labelled pixel in the aligned structure image),
  ``failed`` (jobs whose record says ``failed``), ``unscored`` (finished jobs without a record) and
  ``unfinished`` (expected jobs without a result yet, :mod:`splice.core.health`: pending, running, stale, a
  corrupt record, an ``ok`` record whose output is gone; they count only when the rows come from
  ``load_results(..., expected=True)``, and ``attrs["unfinished"]`` counts them per state) count jobs;
- jobs recorded ``not-applicable`` (the method does not apply to the data set) count nowhere; a method with
  only such jobs on a data set is not one of its compared methods (it cannot empty the common pairs), is
  listed in ``attrs["not_applicable"]`` and shown as "—";
- ``segmenter``: for layout metrics, which segmenter's records the data set's numbers come from
  (``maskrcnn`` or ``panoptic``; the data set's default when it has those records, else the one that has them,
  or the one ``segmenter`` asks for);
- with ``paper=True`` (``iou`` only): the paper's Table 2 value beside ours (``paper_mean``, ``paper_std``,
  ``paper_note``, :mod:`eval.paper`).
"""

from __future__ import annotations

import io
import logging
import math

import numpy as np
import pandas as pd

from splice.core.errors import ConfigError
from splice.core.health import DONE, FAILED, LABELS, OUTPUT_MISSING, PENDING, UNFINISHED
from splice.core.record import NOT_APPLICABLE

from .latex import latex_escape
from .metrics import KEY_IOU, METRICS, Metric, Source, get_metric

log = logging.getLogger(__name__)

TABLE_COLUMNS = ["dataset", "method", "n_common", "mean_common", "std_common", "n_all", "mean_all",
                 "diff_vs_reference", "diff_ci_low", "diff_ci_high", "excluded", "failed", "std_all", "unscored",
                 "segmenter", "reference", "best", "unfinished"]  # fmt: skip
PAPER_COLUMNS = ["paper_mean", "paper_std", "paper_note"]
COUNT_COLUMNS = ("n_common", "n_all", "excluded", "failed", "unscored", "unfinished")
FORMATS = ("md", "csv", "latex")
RANDOM_WARNING = "RANDOM WEIGHTS: metric models were randomly initialised; these numbers mean nothing."


def random_warning(methods: list[str], metric: bool) -> str:
    """The first line of a table made with random weights, naming what was random: the methods whose outputs
    it holds, and/or the metric's model."""
    what = []
    if methods:
        what.append(f"method{'s' if len(methods) > 1 else ''} {', '.join(methods)} ran with random weights")
    if metric:
        what.append("the metric's model had random weights")
    return f"RANDOM WEIGHTS: {'; '.join(what)}; these numbers mean nothing." if what else RANDOM_WARNING
DEFAULT_REFERENCE = "splice"
N_BOOT = 10_000
BOOT_SEED = 0
CI_LEVEL = 0.95


def choose_segmenter(metric: Metric, rows: pd.DataFrame, dataset: str, requested: str | None = None) -> str | None:
    """The segmenter whose records give ``metric`` on ``dataset`` (module docstring); None if it has none."""
    if not metric.by_segmenter:
        return None
    if requested is not None:
        metric.source_for(requested)  # a one-line error when the metric has no such segmenter
        return requested
    from .segmenter import default_segmenter

    have = [s for s, src in metric.sources.items() if src.scored in rows and bool(rows[src.scored].any())]
    default = default_segmenter(dataset)
    if default in metric.sources and (default in have or not have):
        return default
    return have[0] if have else next(iter(metric.sources))


def job_states(df: pd.DataFrame) -> pd.Series:
    """Each row's :mod:`splice.core.health` state (the ``state`` column of :func:`eval.aggregate.load_results`;
    derived from status and output for frames without it)."""
    if "state" in df:
        return df["state"].fillna(PENDING)
    ok = df["status"] == "ok"
    derived = df["status"].where(~ok, DONE).where(~(ok & df["output"].isna()), OUTPUT_MISSING)
    return derived.fillna(PENDING)


def _job_flags(g: pd.DataFrame, src: Source) -> tuple[pd.Series, pd.Series, pd.Series, pd.Series]:
    """(failed, excluded, unscored, value) per job row of ``g``; value is NaN unless the job is used. Jobs
    without a result yet (:data:`splice.core.health.UNFINISHED`) are none of these."""
    state = job_states(g)
    failed = state == FAILED
    done = state == DONE
    scored = (g[src.scored].astype(bool) if src.scored else g[src.column].notna()) & done
    excluded = (scored & g[src.excluded].astype(bool)) if src.excluded else pd.Series(False, index=g.index)
    value = g[src.column].astype(float).where(scored & ~excluded)
    unscored = done & ~excluded & value.isna()
    return failed, excluded, unscored, value


def metric_values(df: pd.DataFrame, metric: str, segmenter: str | None = None) -> pd.Series:
    """Each job's value of ``metric`` (NaN when failed, excluded or unscored), with each data set's segmenter."""
    m = get_metric(metric)
    out = pd.Series(np.nan, index=df.index, dtype=float)
    for dataset, g in df.groupby("dataset", sort=True):
        src = m.source_for(choose_segmenter(m, g, str(dataset), segmenter))
        out.loc[g.index] = _job_flags(g, src)[3]
    return out


def paired_bootstrap_ci(diffs: np.ndarray, n_boot: int = N_BOOT, seed: int = BOOT_SEED,
                        level: float = CI_LEVEL) -> tuple[float, float]:  # fmt: skip
    """Percentile interval of the mean of ``diffs`` (one paired difference per pair) over ``n_boot`` resamples of
    the pairs with replacement; NaN below two pairs."""
    d = np.asarray(diffs, dtype=float)
    if len(d) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def _mean_std(values: pd.Series) -> tuple[int, float, float]:
    n = int(len(values))
    return n, float(values.mean()) if n else math.nan, float(values.std(ddof=1)) if n >= 2 else math.nan


def metric_table(df: pd.DataFrame, metric: str, methods: list[str] | None = None, *, reference: str | None = None,
                 segmenter: str | None = None, paper: bool = False, n_boot: int = N_BOOT) -> pd.DataFrame:  # fmt: skip
    """``metric`` per data set and method, compared on common pairs (module docstring).

    Args:
        df: rows of :func:`eval.aggregate.load_results`.
        metric: ``iou``, ``matched_iou``, ``pixel_accuracy``, ``structure``, ``appearance``, ``cosine``,
            ``seconds``, ``memory``.
        methods: keep only these methods, in this order (default: all, sorted).
        reference: the method differences are taken to (default ``splice``; a name not in ``df`` is an error
            when given explicitly).
        segmenter: for layout metrics, use this segmenter's records on every data set.
        paper: add the paper's Table 2 values (``iou`` only).
        n_boot: bootstrap resamples of the difference intervals.

    Returns:
        A frame with :data:`TABLE_COLUMNS` (+ :data:`PAPER_COLUMNS` with ``paper``), sorted by data set then
        method. ``attrs`` holds ``metric``, ``higher_is_better``, ``random_weights``, ``reference``,
        ``paper`` and ``notes`` (lines a rendering prints under the table).
    """
    m = get_metric(metric)
    if methods is not None:
        df = df[df["method"].isin(methods)]
    order = list(methods) if methods is not None else sorted(df["method"].unique())
    rank = {name: i for i, name in enumerate(order)}
    if reference is not None and reference not in set(df["method"]):
        raise ConfigError(f"--reference {reference}: no such method in this table; it has "
                          f"{', '.join(order) or 'none'}")  # fmt: skip
    reference = reference or DEFAULT_REFERENCE
    paper = paper and m.key == KEY_IOU
    rows: list[dict] = []
    notes: list[str] = []
    not_applicable: list[tuple[str, str]] = []
    random_methods: set[str] = set()  # methods whose outputs came from randomly initialised weights
    random_metric = False  # the metric's own records were made with a randomly initialised model
    states = job_states(df)
    for dataset, g in df.groupby("dataset", sort=True):
        dataset = str(dataset)
        na = states.loc[g.index] == NOT_APPLICABLE
        na_methods = sorted(set(g.loc[na, "method"]) - set(g.loc[~na, "method"]))
        not_applicable += [(dataset, str(n)) for n in na_methods]
        g = g[~na]
        seg = choose_segmenter(m, g, dataset, segmenter)
        src = m.source_for(seg)
        failed, excluded, unscored, value = _job_flags(g, src)
        others = [s for s, o in m.sources.items() if m.by_segmenter and s != seg and o.scored in g
                  and bool(g[o.scored].any())]
        if others:  # records of another segmenter exist: say so, or a reader may think these are the only ones
            notes.append(f"{dataset}: {', '.join(others)} records exist too (--segmenter {others[0]} tabulates them)")
        per_pair: dict[str, pd.Series] = {}
        counts: dict[str, tuple[int, int, int, int]] = {}
        for method, gm in g.groupby("method", sort=False):
            idx = gm.index
            v = value.loc[idx]
            per_pair[str(method)] = v.dropna().groupby(gm.loc[v.notna(), "pair_id"]).mean()
            counts[str(method)] = (int(excluded.loc[idx].sum()), int(failed.loc[idx].sum()),
                                   int(unscored.loc[idx].sum()),
                                   int(states.loc[idx].isin(UNFINISHED).sum()))  # fmt: skip
            done = gm[states.loc[idx] == DONE]
            if done["config_hash"].nunique() > 1:
                log.warning("%s/%s mixes %d configurations in one mean", dataset, method, done["config_hash"].nunique())
            if bool(done["random_weights"].any()):
                random_methods.add(str(method))
            flag = f"{src.record}_random" if src.record is not None else None
            if flag in gm and src.scored in gm:
                random_metric = random_metric or bool(gm.loc[gm[src.scored].astype(bool), flag].any())
        names = sorted(per_pair, key=lambda n: (rank.get(n, len(rank)), n))
        common = sorted(set.intersection(*(set(per_pair[n].index) for n in names))) if names else []
        empty = [n for n in names if per_pair[n].empty]
        if not common and len(names) > 1:
            why = f"{', '.join(empty)} {'has' if len(empty) == 1 else 'have'} no value" if empty else \
                "no pair has a value for every method"  # fmt: skip
            notes.append(f"{dataset}: no common pairs ({why}); leave methods out with --methods to compare the rest")
        ref = per_pair.get(reference)
        block = []
        for n in names:
            pp = per_pair[n]
            n_c, mean_c, std_c = _mean_std(pp.loc[common]) if common else (0, math.nan, math.nan)
            n_a, mean_a, std_a = _mean_std(pp)
            diff = low = high = math.nan
            if ref is not None and n != reference and common:
                d = (pp.loc[common] - ref.loc[common]).to_numpy()
                diff = float(d.mean())
                low, high = paired_bootstrap_ci(d, n_boot=n_boot)
            ex, fa, un, unf = counts[n]
            row = {"dataset": dataset, "method": n, "n_common": n_c, "mean_common": mean_c, "std_common": std_c,
                   "n_all": n_a, "mean_all": mean_a, "diff_vs_reference": diff, "diff_ci_low": low,
                   "diff_ci_high": high, "excluded": ex, "failed": fa, "std_all": std_a, "unscored": un,
                   "segmenter": seg or "", "reference": reference if ref is not None else "", "best": False,
                   "unfinished": unf}  # fmt: skip
            if paper:
                from .paper import paper_value

                pv = paper_value(dataset, n)
                row.update(paper_mean=pv.mean if pv else None, paper_std=pv.std if pv else None,
                           paper_note=pv.note if pv else None)  # fmt: skip
            block.append(row)
        for n in na_methods:
            block.append({**{c: math.nan for c in TABLE_COLUMNS}, "dataset": dataset, "method": str(n),
                          **{c: 0 for c in COUNT_COLUMNS}, "segmenter": seg or "", "reference": "", "best": False,
                          **({c: None for c in PAPER_COLUMNS} if paper else {})})  # fmt: skip
        block.sort(key=lambda r: (rank.get(r["method"], len(rank)), r["method"]))
        scored = [r for r in block if not math.isnan(r["mean_common"])]
        if len(scored) >= 2:
            pick = max if m.higher_is_better else min
            target = pick(r["mean_common"] for r in scored)
            for r in scored:
                r["best"] = r["mean_common"] == target
        rows += block
        if paper:
            notes += _paper_notes(dataset, names)
    columns = TABLE_COLUMNS + (PAPER_COLUMNS if paper else [])
    table = pd.DataFrame(rows, columns=columns)
    for col in COUNT_COLUMNS:
        table[col] = table[col].astype("int64")
    table["best"] = table["best"].astype(bool)
    left = states[df["method"].isin(table["method"]) & states.isin(UNFINISHED)] if len(table) else states[:0]
    unfinished = {LABELS[s]: int((left == s).sum()) for s in UNFINISHED if (left == s).any()}
    random = bool(random_methods) or random_metric
    table.attrs.update(random_warning=random_warning(sorted(random_methods), random_metric) if random else "")
    table.attrs.update(metric=m.key, higher_is_better=m.higher_is_better, random_weights=random, reference=reference,
                       paper=paper, notes=notes, n_boot=n_boot, not_applicable=not_applicable,
                       unfinished=unfinished)  # fmt: skip
    return table


def _paper_notes(dataset: str, names: list[str]) -> list[str]:
    from .paper import NO_ROW, SOURCE, TABLE2, paper_value

    if dataset in NO_ROW:
        return [f"{dataset}: {NO_ROW[dataset]}"]
    ours = {paper_value(dataset, n) for n in names} - {None}
    out = []
    for method, pv in TABLE2.get(dataset, {}).items():
        if pv not in ours:
            out.append(f"{dataset}: the paper ({SOURCE}) reports {method} {pv.text()}" + (f" ({pv.note})" if pv.note
                       else "") + "; not in this run")  # fmt: skip
        elif pv.note:
            out.append(f"{dataset}, {method}, paper value: {pv.note}")
    return out


# -- rendering ---------------------------------------------------------------------------------------------
def number_text(x: float, digits: int | None, sign: bool = False) -> str:
    """``x`` with ``digits`` decimals, or 3 significant digits when ``digits`` is None (a metric whose values
    span orders of magnitude, such as the Gram distance)."""
    spec = ".3g" if digits is None else f".{digits}f"
    return format(x, ("+" if sign else "") + spec)


def _fmt(x: float | None, digits: int | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else number_text(x, digits)


def mean_std_text(mean: float, std: float, digits: int | None, pm: str = "±") -> str:
    """``0.512 ± 0.103``; ``0.512 ± –`` with one value; ``–`` with none."""
    if mean is None or math.isnan(mean):
        return "–"
    return f"{_fmt(mean, digits)} {pm} {_fmt(std, digits)}"


def diff_text(r, digits: int | None, dash: str = "–") -> str:
    """``+0.012 [-0.020, +0.041]``, or ``–``."""
    d = r["diff_vs_reference"]
    if d is None or math.isnan(d):
        return dash
    ci = "" if math.isnan(r["diff_ci_low"]) else \
        f" [{number_text(r['diff_ci_low'], digits, True)}, {number_text(r['diff_ci_high'], digits, True)}]"  # fmt: skip
    return f"{number_text(d, digits, True)}{ci}"


def paper_text(r, pm: str = "±") -> str:
    mean = r.get("paper_mean") if hasattr(r, "get") else None
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    note = r.get("paper_note")
    return f"{mean} {pm} {r['paper_std']}" + ("*" if isinstance(note, str) and note else "")


def footer(table: pd.DataFrame) -> list[str]:
    """The lines printed under a table: how it was computed, and its notes."""
    metric = METRICS.get(table.attrs.get("metric", ""), get_metric("iou"))
    ref = table.attrs.get("reference", DEFAULT_REFERENCE)
    lines = [f"Common pairs: those every method of the data set has a value for (the same n for every method; "
             f"best in bold). Difference: paired mean difference to {ref} on the common pairs, "
             f"{int(CI_LEVEL * 100)}% paired bootstrap interval ({table.attrs.get('n_boot', N_BOOT)} resamples)."]
    if metric.by_segmenter:
        from .metrics import SEGMENTER_LABELS

        used = [s for s in dict.fromkeys(table["segmenter"]) if s] if len(table) else []
        lines.append("Segmenter: " + "; ".join(f"{s} = {SEGMENTER_LABELS.get(s, s)}" for s in used))
    if table.attrs.get("paper"):
        from .paper import SOURCE

        starred = "paper_note" in table and table["paper_note"].notna().any()
        lines.append(f"paper = {SOURCE} (layout IoU, mean ± std as printed" + ("; * see below)." if starred else ")."))
    lines += list(table.attrs.get("notes", []))
    if unfinished_note(table):
        lines.append(unfinished_note(table))
    return lines


def unfinished_note(table: pd.DataFrame) -> str:
    """One line naming the jobs of the table that have no result yet, by state ("" when none)."""
    by = table.attrs.get("unfinished") or {}
    if not by:
        return ""
    what = ", ".join(f"{n} {label}" for label, n in by.items())
    return (f"Not in these numbers: {what} (jobs without a result yet; `splice bench status` names each with "
            "the command that fixes it).")


def render_csv(tables: list[pd.DataFrame]) -> str:
    """One CSV of one or more :func:`metric_table` s: plain numbers in :data:`TABLE_COLUMNS` order plus ``metric``
    (and the paper's columns when a table has them), one header; each table built with random weights adds a
    comment line first, named by its metric when there are several."""
    buf = io.StringIO()
    frames, digits = [], 6
    for table in tables:
        metric = METRICS.get(table.attrs.get("metric", ""), None) or get_metric("iou")
        digits = max(digits, metric.digits or 0)
        if table.attrs.get("random_weights", False):
            warning = table.attrs.get("random_warning") or RANDOM_WARNING
            buf.write(f"# {metric.key}: {warning}\n" if len(tables) > 1 else f"# {warning}\n")
        out = table.copy()
        out.insert(len(TABLE_COLUMNS), "metric", metric.key)
        frames.append(out)
    both = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    both.to_csv(buf, index=False, float_format=f"%.{digits}g", lineterminator="\n")
    return buf.getvalue()


def render(table: pd.DataFrame, fmt: str = "md") -> str:
    """Render a :func:`metric_table` as Markdown, CSV or LaTeX.

    Markdown and LaTeX show ``mean ± std`` on the common pairs (best per data set in bold, by the metric's
    direction), on all pairs, the difference to the reference with its interval, the counts, the segmenter of
    layout metrics and the paper's value when asked, then the footer; CSV keeps plain numbers in
    :data:`TABLE_COLUMNS` order (plus ``metric`` and the paper's columns) for machines. A table built with
    random weights says so on its first line (a Markdown quote, a LaTeX comment, a CSV comment line).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown table format {fmt!r}; use one of {', '.join(FORMATS)}")
    metric = METRICS.get(table.attrs.get("metric", ""), None) or get_metric("iou")
    digits = metric.digits
    random = bool(table.attrs.get("random_weights", False))
    warning = table.attrs.get("random_warning") or RANDOM_WARNING
    paper = bool(table.attrs.get("paper", False))
    if fmt == "csv":
        return render_csv([table])
    show_unscored = bool(len(table)) and int(table["unscored"].sum()) > 0
    show_unfinished = bool(len(table)) and "unfinished" in table and int(table["unfinished"].sum()) > 0
    show_seg = metric.by_segmenter
    ref = table.attrs.get("reference", DEFAULT_REFERENCE)
    arrow = "↑" if metric.higher_is_better else "↓"
    counts = ["excluded", "failed"] + (["unscored"] if show_unscored else []) + \
        (["unfinished"] if show_unfinished else [])  # fmt: skip
    head = (["dataset", "method"] + (["segmenter"] if show_seg else [])
            + [f"{metric.label} {arrow} (common pairs)", "n", "all pairs", "n", f"vs {ref} [95% CI]"] + counts
            + (["paper"] if paper else []))  # fmt: skip

    na = {tuple(x) for x in table.attrs.get("not_applicable", [])}

    def cells(r, tex: bool) -> list[str]:
        pm, dash = (r"$\pm$", "--") if tex else ("±", "–")
        common = mean_std_text(r["mean_common"], r["std_common"], digits, pm).replace("–", dash)
        if (r["dataset"], r["method"]) in na:  # the method does not apply to this data set
            common = "---" if tex else "—"
        if r["best"]:
            common = (r"\textbf{" + common + "}") if tex else f"**{common}**"
        esc = latex_escape if tex else (lambda s: s)
        out = [esc(str(r["dataset"])), esc(str(r["method"]))] + ([esc(str(r["segmenter"]))] if show_seg else [])
        out += [common, str(int(r["n_common"])),
                mean_std_text(r["mean_all"], r["std_all"], digits, pm).replace("–", dash), str(int(r["n_all"])),
                diff_text(r, digits, dash)]  # fmt: skip
        out += [str(int(r[c])) for c in counts]
        if paper:
            out.append(paper_text(r, pm).replace("—", "---" if tex else "—"))
        return out

    lines: list[str] = []
    if fmt == "md":
        if random:
            lines += [f"> **{warning}**", ""]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * (2 + show_seg) + "---:|" * (len(head) - 2 - show_seg))
        for _, r in table.iterrows():
            lines.append("| " + " | ".join(cells(r, False)) + " |")
        for i, line in enumerate(footer(table)):  # one paragraph each
            lines += ["", f"_{line}_" if i == 0 else line]
        return "\n".join(lines) + "\n"
    if random:
        lines.append(f"% {warning}")
    lines.append(r"\begin{tabular}{" + "l" * (2 + show_seg) + "r" * (len(head) - 2 - show_seg) + "}")
    lines.append(r"\toprule")
    tex_head = [latex_escape(h) for h in head]
    tex_head[2 + show_seg] = latex_escape(f"{metric.label} (common pairs) ") + (
        r"$\uparrow$" if metric.higher_is_better else r"$\downarrow$")
    lines.append(" & ".join(tex_head) + r" \\")
    lines.append(r"\midrule")
    for _, r in table.iterrows():
        lines.append(" & ".join(cells(r, True)) + r" \\")
    lines.append(r"\bottomrule")
    lines.append(r"\end{tabular}")
    lines += [f"% {line}" for line in footer(table)]
    return "\n".join(lines) + "\n"
