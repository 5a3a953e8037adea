"""The dummy method itself (the runner tests steer it through its options)."""

from __future__ import annotations

from splice.core.method import Pair, RunSettings
from tests.support.dummies import Dummy


def test_dummy_resizes_to_max_side(tiny_pair):
    s, a = tiny_pair
    out = Dummy().run(Pair("p", s, a), RunSettings(max_side=40))
    assert out.image.size == (48, 40) and out.geometry.output == (48, 40)


def test_dummy_options_are_typed(tiny_pair):
    import pytest

    from splice.core.errors import ConfigError

    opts = Dummy().options(RunSettings(options={"sleep": "0.5", "fail_on": "a,b", "oom_above": "-1"}))
    assert opts.sleep == 0.5 and opts.fail_on == ("a", "b") and opts.oom_above == -1
    with pytest.raises(ConfigError, match=r"dummy.sleep: 'soon' is not a number"):
        Dummy().options(RunSettings(options={"sleep": "soon"}))
