"""What raters see: the question, the instructions, and the Mechanical Turk HIT template.

The question is PROTOCOL.md's, word for word, after the 2AFC study of the Splice paper
(Tumanyan et al., CVPR 2022, Table 1): image A is the structure image in grayscale, image B
the appearance image, and the rater picks one of two alternatives.

The template is an HTMLQuestion for Mechanical Turk: a ``<crowd-form>`` with one plain
radio group per trial (``name="trial_<k>"``, values ``left``/``right``), so the results CSV
gets an ``Answer.trial_<k>`` column per trial; every image is a ``${column}`` placeholder
that Mechanical Turk fills from the batch CSV. Nothing here may name a method, a data set
or an input file: raters see this file.
"""

from __future__ import annotations

QUESTION = (
    "Which image best shows the shape/structure of image A combined with the appearance/style of image B?"
)
"""PROTOCOL.md, "2AFC user study" (exact text)."""

INSTRUCTIONS = (
    "Image A is shown in grayscale: look at its shapes and layout, not its colours. "
    "Image B shows the appearance (colours, textures, style) to combine with them. "
    "Pick the one of the two images below that you think does this best. "
    "There is no time limit; please answer every question."
)

TRIAL_FIELDS = ("id", "ref_a", "ref_b", "left", "right")
"""Per-trial columns of the batch CSV: ``trial_<k>_<field>``."""

CHOICES = ("left", "right")


def trial_column(slot: int, field: str) -> str:
    return f"trial_{slot}_{field}"


def batch_header(trials_per_hit: int) -> list[str]:
    """Columns of the batch CSV: the HIT's opaque id, then 5 per trial."""
    cols = ["hit"]
    for k in range(1, trials_per_hit + 1):
        cols += [trial_column(k, f) for f in TRIAL_FIELDS]
    return cols


_STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 0 auto; padding: 12px; }
.trial { border: 1px solid #bbb; border-radius: 6px; padding: 12px; margin: 16px 0; }
.refs, .alts { display: flex; gap: 16px; justify-content: center; flex-wrap: wrap; }
figure { margin: 0; text-align: center; }
figure img { max-width: 320px; max-height: 320px; display: block; margin: 4px auto; }
.alts label { cursor: pointer; border: 3px solid transparent; border-radius: 6px; padding: 6px; text-align: center; }
.alts label:has(input:checked) { border-color: #1a73e8; }
.alts img { max-width: 420px; max-height: 420px; display: block; margin: 4px auto; }
.question { font-weight: bold; }
"""


def cap_sentence(max_hits_per_worker: int | None) -> str:
    """What raters are told about the cap of HITs per worker ('' without a cap)."""
    if not max_hits_per_worker:
        return ""
    n = max_hits_per_worker
    return (f"Please do at most {n} of these tasks: answers beyond your first {n} cannot be used."
            if n > 1 else "Please do only one of these tasks: answers beyond your first cannot be used.")


def mturk_template(trials_per_hit: int, max_hits_per_worker: int | None = None) -> str:
    """The HIT's HTML question (Crowd HTML Elements) reading the batch CSV's columns."""
    blocks = []
    for k in range(1, trials_per_hit + 1):
        c = lambda f: "${" + trial_column(k, f) + "}"  # noqa: E731
        blocks.append(
            f"""
<div class="trial">
  <p>Question {k} of {trials_per_hit}</p>
  <p class="question">{QUESTION}</p>
  <div class="refs">
    <figure><figcaption>A</figcaption><img src="{c('ref_a')}" alt="image A"></figure>
    <figure><figcaption>B</figcaption><img src="{c('ref_b')}" alt="image B"></figure>
  </div>
  <div class="alts">
    <label><img src="{c('left')}" alt="left option">
      <input type="radio" name="trial_{k}" value="left" required> Left</label>
    <label><img src="{c('right')}" alt="right option">
      <input type="radio" name="trial_{k}" value="right" required> Right</label>
  </div>
</div>"""
        )
    return f"""<!DOCTYPE html>
<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<style>{_STYLE}</style>
<crowd-form answer-format="flatten-objects">
<h2>Compare images</h2>
<p>{INSTRUCTIONS}</p>
{f"<p><b>{cap_sentence(max_hits_per_worker)}</b></p>" if max_hits_per_worker else ""}
{''.join(blocks)}
</crowd-form>
"""
