"""The one option parser (splice.core.options): typing, presets, --method-args routing, one-line errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from splice.core import options
from splice.core.errors import ConfigError


@dataclass(frozen=True)
class Opts:
    steps: int = 100
    lr: float = 0.002
    flip: bool = True
    mode: Literal["fast", "exact"] = "exact"
    size: int | None = None
    jitter: tuple[float, float] = (0.4, 0.2)
    layers: tuple[int, ...] = (0, 2)
    name: str = "x"
    note: str = field(default="", metadata={"help": "free text"})

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, not {self.steps}")


PRESETS = {"paper": {}, "smoke": {"steps": 3, "size": 64}}


@pytest.mark.parametrize(
    "text,tp,value",
    [
        ("7", int, 7),
        ("1_000", int, 1000),
        (7.0, int, 7),
        ("1e-3", float, 0.001),
        ("2", float, 2.0),
        (3, float, 3.0),
        ("yes", bool, True),
        ("0", bool, False),
        ("False", bool, False),
        (True, bool, True),
        ("none", int | None, None),
        ("5", int | None, 5),
        (None, int | None, None),
        ("0.1,0.2", tuple[float, float], (0.1, 0.2)),
        ("[1, 2, 3]", tuple[int, ...], (1, 2, 3)),
        ([1, 2], tuple[int, ...], (1, 2)),
        ("exact", Literal["fast", "exact"], "exact"),
        (12, str, "12"),
    ],
)
def test_coerce_types_text_and_typed_values(text, tp, value):
    got = options.coerce(text, tp, "m.k")
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    "text,tp,message",
    [
        ("abc", int, "m.k: 'abc' is not an integer"),
        ("1.5", int, "m.k: '1.5' is not an integer"),
        (True, int, "m.k: True is not an integer"),
        ("fast-ish", float, "m.k: 'fast-ish' is not a number"),
        ("maybe", bool, "m.k: 'maybe' is not true or false"),
        ("1,2,3", tuple[float, float], "m.k: '1,2,3' needs 2 comma-separated values, not 3"),
        ("exct", Literal["fast", "exact"], "m.k: 'exct' is not a choice; did you mean exact? use one of fast, exact"),
        (None, int, "m.k: a value is needed (an integer)"),
    ],
)
def test_coerce_errors_are_one_line_and_name_the_option(text, tp, message):
    with pytest.raises(ConfigError) as e:
        options.coerce(text, tp, "m.k")
    assert str(e.value) == message


def test_resolve_defaults_preset_overrides():
    assert options.resolve(Opts, PRESETS, "paper", None, "m") == Opts()
    smoke = options.resolve(Opts, PRESETS, "smoke", {"lr": "0.5", "size": "none"}, "m")
    assert (smoke.steps, smoke.lr, smoke.size) == (3, 0.5, None)  # preset, then the user's overrides win
    # a suite preset the method does not define runs its paper settings; an unknown preset is an error
    assert options.resolve(Opts, PRESETS, "paper-10k", None, "m") == Opts()
    assert options.resolve_preset("fast", PRESETS) == "paper" and options.resolve_preset("smoke", PRESETS) == "smoke"
    with pytest.raises(
        ConfigError,
        match=r"^--preset 'smoek' is not a preset; did you mean smoke\? choose from "
        r"paper, paper-10k, fast, smoke$",
    ):
        options.resolve(Opts, PRESETS, "smoek", None, "m")
    with pytest.raises(ConfigError, match=r"^m: unknown option 'stesp'; did you mean steps\?$"):
        options.resolve(Opts, PRESETS, "paper", {"stesp": 1}, "m")
    with pytest.raises(ConfigError, match=r"^m: steps must be >= 1, not 0$"):  # the dataclass's own check
        options.resolve(Opts, PRESETS, "paper", {"steps": "0"}, "m")
    # a method may define presets of its own; they are valid names for it
    assert options.resolve(Opts, {**PRESETS, "readme": {"steps": 9}}, "readme", None, "m").steps == 9


def test_typed_overrides_and_to_dict():
    assert options.typed(Opts, {"steps": "5", "jitter": "1,2"}, "m") == {"steps": 5, "jitter": [1.0, 2.0]}
    assert options.to_dict(Opts())["jitter"] == [0.4, 0.2]


def test_describe_lists_types_help_and_every_preset():
    rows = {r["name"]: r for r in options.describe(Opts, PRESETS, "m")}
    assert rows["steps"]["type"] == "int" and rows["steps"]["presets"] == {
        "paper": 100,
        "paper-10k": 100,
        "fast": 100,
        "smoke": 3,
    }
    assert rows["mode"]["type"] == "one of fast, exact" and rows["size"]["type"] == "int | None"
    assert rows["jitter"]["type"] == "2 floats" and rows["layers"]["type"] == "list of ints"
    assert rows["note"]["help"] == "free text"


def test_assignments_route_to_the_methods_that_have_the_option():
    names = {"a": ["steps", "lr"], "b": ["steps", "size"], "c": []}
    parsed = options.parse_assignments(["steps=5", "b.steps=7", "lr=0.1"], ["a", "b", "c", "d"])
    assert options.assign(parsed, names) == {"a": {"steps": "5", "lr": "0.1"}, "b": {"steps": "7"}, "c": {}}
    # method names with dashes, values with '=' in them
    parsed = options.parse_assignments(["structural-analogy.niter=5", "b.size=x=y"], ["structural-analogy", "b"])
    assert [(a.method, a.key, a.value) for a in parsed] == [("structural-analogy", "niter", "5"), ("b", "size", "x=y")]


@pytest.mark.parametrize(
    "items,message",
    [
        (["steps"], "--method-args 'steps' is not key=value; write e.g. --method-args steps=100 or splice.steps=100"),
        (["=3"], "--method-args '=3' is not key=value"),
        (["spilce.steps=3"], "--method-args 'spilce.steps=3': 'spilce' is not a method; did you mean splice.steps?"),
        (["d.steps=3"], "--method-args 'd.steps=3': d is not among the selected methods (a, b)"),
        (["a.size=3"], "--method-args 'a.size=3': a has no option 'size'; options: lr, steps"),
        (
            ["nope=1"],
            "--method-args 'nope=1': no selected method (a, b) has an option 'nope'; options: lr, size, steps",
        ),
    ],
)
def test_assignment_errors(items, message):
    with pytest.raises(ConfigError) as e:
        options.assign(
            options.parse_assignments(items, ["a", "b", "d", "splice"]), {"a": ["steps", "lr"], "b": ["steps", "size"]}
        )
    assert str(e.value).startswith(message)


def test_did_you_mean_prefers_names_that_start_alike():
    from splice.core.errors import near_names

    metrics = ["iou", "vit", "lpips_vgg", "lpips_alex", "dists", "clip", "dino", "dinov2"]
    assert near_names("lpipz", metrics) == ["lpips_vgg"]  # difflib alone says "clip"
    assert near_names("lpipz", metrics, n=3) == ["lpips_vgg", "lpips_alex", "clip"]
    assert near_names("smoek", ["paper", "paper-10k", "fast", "smoke"]) == ["smoke"]
    assert near_names("splise", ["splice", "strotss"]) == ["splice"]
    assert near_names("zzz", metrics) == [] and near_names("dino", metrics) == ["dinov2"]  # never the name itself
