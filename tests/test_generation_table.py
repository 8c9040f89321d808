"""scripts/generation_table.py: its rows name real configs and correctors; one row judged on a tiny trained run."""
import os
import runpy

import numpy as np
import pytest
from PIL import Image

from jaxdiff.config import files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLE = runpy.run_path(os.path.join(ROOT, "scripts", "generation_table.py"))


def test_rows_name_configs_and_correctors_that_exist():
    from jaxdiff import experiment
    from jaxdiff.priors import store
    from jaxdiff.sampling.correctors import check_corrector

    rows = TABLE["ROWS"]
    assert len({r.name for r in rows}) == len(rows)
    # rows that share a workdir share its training: the same config and overrides
    runs = {}
    for r in rows:
        assert runs.setdefault(r.run_name, (r.config, r.overrides)) == (r.config, r.overrides), r.name
    for r in rows:
        c = TABLE["_config"](r.config, r.overrides)
        process = experiment.build_process(c)
        assert process.can_generate, r.config
        check_corrector(r.corrector or process.generation_corrector(c.sample.corrector), process)
        if r.steps:
            assert r.steps <= process.T


def test_unknown_rows_are_refused_naming_the_allowed_ones():
    with pytest.raises(SystemExit, match=r"unknown row\(s\) \['nope'\]; allowed: ddpm, ddim_10"):
        TABLE["select_rows"]("ddim_20,nope")
    assert [r.name for r in TABLE["select_rows"]("heat, ddpm")] == ["heat", "ddpm"]


@pytest.mark.slow
def test_one_row_judged_on_a_tiny_run(tmp_path):
    from jaxdiff.cli.common import held_out_images
    from jaxdiff.evaluation import features
    from jaxdiff.train.loop import train_and_evaluate

    c = files.load_config_file(os.path.join(ROOT, "configs", "ddim.py"))
    m, t = c.model, c.train
    m.ch, m.ch_mult, m.num_res_blocks, m.num_groups = 8, (1, 2), 1, 4
    t.batch_size, t.num_steps, t.checkpoint_every, t.log_every, t.warmup_steps, t.num_sample_images = 16, 2, 2, 1, 0, 0
    wd = str(tmp_path / "ddim")
    train_and_evaluate(c, wd)
    row = TABLE["Row"]("ddim_10", "ddim", steps=10)
    real = held_out_images(c, 40)
    r = TABLE["judge_row"](row, wd, num=12, batch=6, seed=0, images=str(tmp_path / "img"), real=real,
                           classifier=features.load_digits_classifier())
    j = r["judge"]
    assert (r["network_calls"], r["corrector"], r["step"], j["num_samples"], j["num_real"]) == (10, "ddim", 2, 12, 40)
    assert 0.0 <= j["confident_fraction"] <= 1.0 and sum(j["class_counts"]) == 12
    assert r["seconds"] > 0 and r["train_seconds"] is not None and r["train_seconds"] > 0
    grid = np.asarray(Image.open(r["grid"]))
    assert grid.ndim == 2 and grid.shape[0] < grid.shape[1]  # 12 tiles in rows of 8: two rows, wider than tall
    md = TABLE["markdown"]([r], real.shape[0])
    assert "| ddim_10 | `ddim` | `ddim` | 10 |" in md and "images/gen_ddim_10.png" in md
    assert "12 samples per row against the 40 held-out digits" in md
