"""``splice bench --dry-run`` shows what each method does per data set: Swapping Autoencoder runs its AFHQ model on
AFHQ and its mountain model on Mountains, and does not apply to Wild-Pairs (the real manifests in datasets/)."""

from __future__ import annotations

import json

from tests.support.cli import invoke


def test_swapping_autoencoder_per_data_set(capsys, tmp_path):
    argv = ["bench", "--methods", "swapping-autoencoder", "--datasets", "wild-pairs,afhq,mountains", "--root",
            tmp_path, "--out", tmp_path / "run", "--dry-run"]  # fmt: skip
    code, out, err = invoke(capsys, *argv)
    assert code == 0
    lines = out.splitlines()
    assert "# swapping-autoencoder on afhq: model=afhq_pretrained preprocess=resize load_size=256 crop_size=256 " \
           "geometry='stretch 256x256'" in lines
    assert "# swapping-autoencoder on mountains: model=mountain_pretrained preprocess=scale_shortside load_size=512 " \
           "crop_size=512 geometry='resize-short 512'" in lines
    assert any(ln.startswith("# swapping-autoencoder on wild-pairs: not applicable: ") for ln in lines)
    states = {}
    for ln in lines:
        if not ln.startswith("#"):
            state, _, dataset = ln.split()[:3]
            states.setdefault(dataset, set()).add(state)
    assert states == {"wild-pairs": {"not-applicable"}, "afhq": {"pending"}, "mountains": {"pending"}}
    assert "33 not applicable" in err and "would run 101" in err
    assert not (tmp_path / "run").exists()  # a dry run writes nothing

    code, out, _ = invoke(capsys, *argv, "--json")
    rows = json.loads(out)
    afhq = next(r for r in rows if r["dataset"] == "afhq")
    mountains = next(r for r in rows if r["dataset"] == "mountains")
    wild = next(r for r in rows if r["dataset"] == "wild-pairs")
    assert afhq["dataset_options"]["model"] == "afhq_pretrained" and afhq["state"] == "pending"
    assert mountains["dataset_options"]["model"] == "mountain_pretrained"
    assert wild["state"] == "not-applicable" and "afhq and mountains" in wild["not_applicable"]
    assert len({afhq["config_hash"], mountains["config_hash"], wild["config_hash"]}) == 3
