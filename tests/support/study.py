"""Helpers for the 2AFC study tests: a small synthetic run store and results (no tests in this file).

The store follows splice/core/store.py's layout and record schema. Our method ("splice") returns
the structure image itself (identity geometry), "strotss" a 64x64 centre crop of it, and
"wct2" a 48x40 stretch of a blurred copy, so that aligned views can be checked exactly.

:func:`write_mturk_results` writes results the way Mechanical Turk returns them for an export:
each worker takes each HIT of their list at most once (the platform's rule), answering by a policy.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageFilter, PngImagePlugin

from splice.core.geometry import Geometry
from tests.support.images import make_image
from tests.support.store import write_job

OURS = "splice"
BASELINES = ["strotss", "wct2"]
PAIRS = {"afhq": ["cat_to_dog_001", "fox_to_cat_002", "dog_to_wolf_003"], "wild": ["giraffe_zebra", "=HYPERLINK(1)"]}
CONFIG = {"splice": "aaaa11112222", "strotss": "bbbb33334444", "wct2": "cccc55556666"}
SECRET_TEXT = "made-by-splice-strotss"


def _save_with_metadata(img: Image.Image, path: Path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", SECRET_TEXT)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, pnginfo=info)


def build_store(root: Path, missing: tuple[tuple[str, str, str], ...] = (("wild", "giraffe_zebra", "wct2"),),
                extra_variant: bool = False) -> Path:
    """A run store at ``root / "runs" / "demo"``; returns its path. ``missing`` jobs fail."""
    run = root / "runs" / "demo"
    n = 0
    for dataset, pairs in PAIRS.items():
        for pair_id in pairs:
            n += 1
            s_path = root / "data" / dataset / f"{pair_id}_structure_original.png"
            a_path = root / "data" / dataset / f"{pair_id}_appearance_original.png"
            structure = make_image(96, 80, seed=10 + n)
            _save_with_metadata(structure, s_path)
            _save_with_metadata(make_image(72, 88, seed=100 + n), a_path)
            blurred = structure.filter(ImageFilter.GaussianBlur(2))
            stretch = Geometry.stretch(structure.size, (48, 40))
            outputs = {
                "splice": (structure.copy(), Geometry.identity(structure.size)),
                "strotss": (Geometry.center_crop(structure.size, (64, 64)).apply(structure),
                            Geometry.center_crop(structure.size, (64, 64))),
                "wct2": (stretch.apply(blurred), stretch),
            }
            for method, (img, geom) in outputs.items():
                seeds = [0, 1] if extra_variant and method == "wct2" else [0]
                for seed in seeds:
                    failed = (dataset, pair_id, method) in missing
                    write_job(run, dataset, pair_id, method, status="failed" if failed else "ok", seed=seed,
                              config_hash=CONFIG[method], output=img, geometry=None if failed else geom.to_dict(),
                              structure=str(s_path), appearance=str(a_path), weights={"spec": f"{method}-weights"},
                              seconds=1.0, peak_memory_mb=10.0, error="boom" if failed else None,
                              save_output=lambda path, image: _save_with_metadata(image, path))  # fmt: skip
    return run


def export_settings(root: Path, **kw):
    from eval.study.export import ExportSettings

    base = dict(run_dir=root / "runs" / "demo", dest=root / "study", base_url="https://example.org/s1/images",
                baselines=list(BASELINES), ours=OURS, judgments=3, vigilance=0.2, seed=7, trials_per_hit=5,
                long_side=64)  # fmt: skip
    base.update(kw)
    return ExportSettings(**base)


def exported_study(root: Path, **kw) -> Path:
    from eval.study.export import export_study

    build_store(root)
    s = export_settings(root, **kw)
    export_study(s)
    return Path(s.dest)


def answer_key(study: Path) -> dict[str, dict[str, str]]:
    """trial id -> its row of the private answer key."""
    from eval.study import csvsafe

    return {r["trial_id"]: r for r in csvsafe.read_csv_rows(study / "private" / "answer_key.csv")[1]}


class Server:
    """The lab page of an exported study on a free port, in a thread, with a tiny HTTP client."""

    def __init__(self, study: Path, rater: str | None = None):
        import threading

        from eval.study.server import make_server

        self.httpd, self.lab = make_server(study, 0, rater)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def request(self, method: str, path: str, body: dict | None = None, headers: dict | None = None):
        import http.client
        import urllib.parse

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        data = urllib.parse.urlencode(body).encode() if body is not None else None
        h = {"Content-Type": "application/x-www-form-urlencoded"} if data is not None else {}
        conn.request(method, path, body=data, headers={**h, **(headers or {})})
        resp = conn.getresponse()
        out = (resp.status, dict(resp.getheaders()), resp.read())
        conn.close()
        return out

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# ------------------------------------------------------------------------------ rater policies
FLIP = {"left": "right", "right": "left"}


def good_answer(k: dict[str, str]) -> str:
    """A careful rater who prefers ours against strotss and the baseline against wct2."""
    if k["kind"] == "vigilance":
        return k["correct_side"]
    return k["ours_side"] if k["baseline"] == "strotss" else FLIP[k["ours_side"]]


def bad_answer(k: dict[str, str]) -> str:
    """A careless rater: fails every catch trial, always picks the baseline."""
    return FLIP[k["correct_side"]] if k["kind"] == "vigilance" else FLIP[k["ours_side"]]


def skipper_answer(k: dict[str, str]) -> str:
    """Careful on comparisons, but leaves every catch trial unanswered."""
    return "" if k["kind"] == "vigilance" else good_answer(k)


POLICIES = {"good": good_answer, "bad": bad_answer, "skipper": skipper_answer, "rejected": good_answer}


def write_mturk_results(study: Path, path: Path, workers: list[tuple[str, list[str] | None, str]],
                        crowd_style: bool = False) -> None:
    """Results like Mechanical Turk's: ``workers`` = [(worker id, HIT ids or None for all, policy)]."""
    from eval.study import csvsafe
    from eval.study.results import META

    header, batch = csvsafe.read_csv_rows(study / "batch.csv")
    key = answer_key(study)
    slots = sum(c.endswith("_id") for c in header)
    answer_cols = ([f"Answer.trial_{k}.{s}" for k in range(1, slots + 1) for s in ("left", "right")] if crowd_style
                   else [f"Answer.trial_{k}" for k in range(1, slots + 1)])
    cols = META + [f"Input.{c}" for c in header] + answer_cols + ["Approve", "Reject"]
    rows = []
    for worker, hits, policy in workers:
        for n, row in enumerate(r for r in batch if hits is None or r["hit"] in hits):
            answers = {k: POLICIES[policy](key[row[f"trial_{k}_id"]]) for k in range(1, slots + 1)}
            out = {"HITId": row["hit"], "AssignmentId": f"A{worker}{n}", "WorkerId": worker,
                   "AssignmentStatus": "Rejected" if policy == "rejected" else "Approved", "WorkTimeInSeconds": "60"}
            out.update({f"Input.{c}": row[c] for c in header})
            for k, a in answers.items():
                if crowd_style:
                    out[f"Answer.trial_{k}.left"] = "true" if a == "left" else "false"
                    out[f"Answer.trial_{k}.right"] = "true" if a == "right" else "false"
                else:
                    out[f"Answer.trial_{k}"] = a
            rows.append(out)
    csvsafe.write_dict_csv(path, cols, rows)
