"""scripts/generation_table.py: its rows name real configs and correctors; the mean ± spread over prior keys, the
training wall time, merging and the tables; one row judged over two keys on a tiny trained run."""
import json
import os
import runpy
import statistics

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
        assert r.tables and set(r.tables) <= set(TABLE["TABLES"]), r.name
        if r.spacing is not None:
            from jaxdiff.sampling.steps import SPACING_NAMES

            assert r.spacing in SPACING_NAMES, r.name
        if r.step is not None:  # a checkpoint the default command keeps: a multiple of checkpoint_every it reaches
            t = c.train
            assert r.step % t.checkpoint_every == 0 and r.step <= t.num_steps, r.name
            assert (t.num_steps - r.step) // t.checkpoint_every < t.keep_checkpoints, r.name


def test_rows_of_configs_this_checkout_lacks_wait_for_them():
    assert TABLE["_present"]("ddim") and not TABLE["_present"]("no_such_config")
    assert all(TABLE["_present"](r.config) for r in TABLE["ROWS"])
    warm = [r for r in TABLE["ROWS"] if r.config in ("warm_blur", "soft_diffusion")]
    assert bool(warm) == (TABLE["_present"]("warm_blur") or TABLE["_present"]("soft_diffusion"))


def test_every_table_has_rows_and_the_main_table_has_every_shipped_generating_default():
    rows = TABLE["ROWS"]
    # the warm table's rows wait for configs/warm_blur.py and soft_diffusion.py (branch warm)
    optional = set() if TABLE["_present"]("warm_blur") or TABLE["_present"]("soft_diffusion") else {"warm"}
    assert {t for r in rows for t in r.tables} == set(TABLE["TABLES"]) - optional
    main = {r.config for r in rows if "generation" in r.tables}
    assert {"ddpm", "ddim", "flow", "edm", "blurring_diffusion", "heat", "cold_blur_gen", "cold_superres",
            "cold_fade", "cold_animorph"} <= main
    # the tables' rows: by table, in ROWS order
    weighting = TABLE["select_rows"]("", "weighting")
    assert weighting and all("weighting" in r.tables for r in weighting)
    assert {r.step for r in weighting} == {500, 1000}
    with pytest.raises(SystemExit, match=r"unknown table\(s\) \['nope'\]; allowed: generation"):
        TABLE["select_rows"]("", "nope")


def test_summarize_is_the_mean_and_sample_standard_deviation():
    v = [31.0, 36.5, 28.25, 40.0]
    s = TABLE["summarize"](v)
    assert s["mean"] == pytest.approx(statistics.fmean(v)) and s["spread"] == pytest.approx(statistics.stdev(v))
    assert (s["min"], s["max"], s["n"]) == (28.25, 40.0, 4)
    one = TABLE["summarize"]([7.0])
    assert (one["mean"], one["spread"], one["n"]) == (7.0, 0.0, 1)
    with pytest.raises(ValueError, match="no values"):
        TABLE["summarize"]([])


def test_summarize_keys_reads_nested_judge_fields():
    judges = [{"frechet": f, "kid_mean": 1.0, "confident_fraction": c, "smallest_class_share": 0.05,
               "classes_present": k, "nearest_train": {"mean": n}} for f, c, k, n in
              ((30.0, 0.9, 10, 0.10), (40.0, 0.8, 9, 0.12))]
    s = TABLE["summarize_keys"](judges)
    assert s["frechet"]["mean"] == 35.0 and s["confident_fraction"]["mean"] == pytest.approx(0.85)
    assert (s["classes_present"]["min"], s["classes_present"]["max"]) == (9, 10)
    assert s["nearest_train"]["mean"] == pytest.approx(0.11)
    assert s["frechet"]["spread"] == pytest.approx(statistics.stdev([30.0, 40.0]))


def _metrics(path, rows):
    with open(path, "w") as f:
        for step, wall in rows:
            f.write(json.dumps({"step": step, "wall_time": wall, "loss": 0.1}) + "\n")


def test_train_seconds_to_a_step_extrapolates_to_step_zero(tmp_path):
    # steps 50 … 1000 every 50, 2 s per step after step 50 (the first window held compilation: not in the rate)
    _metrics(tmp_path / "metrics.jsonl", [(s, 1000.0 + 2.0 * s) for s in range(50, 1001, 50)])
    f = TABLE["train_seconds"]
    assert f(str(tmp_path)) == pytest.approx(2.0 * 1000)
    assert f(str(tmp_path), upto=500) == pytest.approx(2.0 * 500)
    assert f(str(tmp_path), upto=50) is None  # one logged step: no rate
    assert f(str(tmp_path / "missing")) is None


def test_train_seconds_of_a_resumed_run_counts_from_the_resume(tmp_path):
    # 1 s/step to step 300, a day's pause, a resume from the step-250 checkpoint at 3 s/step
    rows = [(s, float(s)) for s in range(50, 301, 50)] + [(s, 86400.0 + 3.0 * s) for s in range(300, 1001, 50)]
    _metrics(tmp_path / "metrics.jsonl", rows)
    assert TABLE["train_seconds"](str(tmp_path)) == pytest.approx(3.0 * 1000)


def _result(name, tables=("generation",), frechet=(30.0, 34.0), keys=2):
    summ = TABLE["summarize"]
    per = [{"frechet": f, "kid_mean": 0.0, "confident_fraction": 0.9, "smallest_class_share": 0.06,
            "classes_present": 10, "nearest_train": 0.1} for f in frechet]
    judge = {"num_samples": 12, "floor": {"frechet": 37.5}, "nearest_train_floor": {"mean": 0.09}}
    return {"row": name, "tables": list(tables), "config": "ddim", "corrector": "ddim", "spacing": "linear",
            "network_calls": 20, "step": 1000, "train_seconds": 300.0, "note": "", "judge": judge, "keys": keys,
            "summary": {m: summ([p[m] for p in per]) for m in per[0]}, "seconds": 2.5, "grid": f"x/gen_{name}.png"}


def test_markdown_shows_mean_and_spread_and_one_section_per_table():
    md = TABLE["markdown"]([_result("ddim_20"), _result("ddim_wnone_500", ("weighting",), (40.0,), keys=1)], 180)
    spread = statistics.stdev([30.0, 34.0])
    assert f"| 32.0 ± {spread:.1f} (37.5) | 90.0 ± 0.0 % | 6.0 ± 0.0 % | 10 |" in md
    assert "| ddim_20 | `ddim` | `ddim` | 20 | 1000, 5.0 min |" in md
    assert "| 40.0 (37.5) |" in md  # one key: no spread
    gen, weighting = md.index("### " + TABLE["TABLES"]["generation"]), md.index("### " + TABLE["TABLES"]["weighting"])
    assert gen < md.index("ddim_20") < weighting < md.index("ddim_wnone_500")
    assert "12 samples per row and prior key against the 180 held-out digits" in md and "1–2 prior keys" in md
    # the Inception column only in a table where a row has it
    assert "Inception FID ↓ (floor)" not in md.split("### ")[1]
    inc = dict(_result("ddim_20"), inception={"fid": 12.5, "floor": {"fid": 3.25}})
    md = TABLE["markdown"]([inc, _result("ddim_10")], 180)
    assert "| classes | Inception FID ↓ (floor) | nearest-train" in md
    assert "| 10 | 12.5 (3.2) | 0.100" in md and "| 10 | – | 0.100" in md


def test_merge_replaces_rows_by_name_in_rows_order():
    old = [_result("heat"), _result("ddim_20", frechet=(99.0,))]
    merged = TABLE["merge_results"](old, [_result("ddim_20"), _result("ddpm")])
    assert [r["row"] for r in merged] == ["ddpm", "ddim_20", "heat"]
    assert merged[1]["summary"]["frechet"]["mean"] == 32.0


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
    m.ch, m.ch_mult, m.num_res_blocks, m.num_groups = 8, (1,), 1, 4
    t.batch_size, t.num_steps, t.checkpoint_every, t.log_every, t.warmup_steps, t.num_sample_images = 16, 2, 2, 1, 0, 0
    wd = str(tmp_path / "ddim")
    train_and_evaluate(c, wd)
    row = TABLE["Row"]("ddim_10", "ddim", steps=10)
    real = held_out_images(c, 40)
    r = TABLE["judge_row"](row, wd, num=12, batch=6, seed=0, images=str(tmp_path / "img"), real=real,
                           classifier=features.load_digits_classifier(), keys=2)
    j = r["judge"]
    assert (r["network_calls"], r["corrector"], r["step"], j["num_samples"], j["num_real"]) == (10, "ddim", 2, 12, 40)
    assert 0.0 <= j["confident_fraction"] <= 1.0 and sum(j["class_counts"]) == 12
    assert r["seconds"] > 0 and r["train_seconds"] is not None and r["train_seconds"] > 0
    # two prior keys: two judged sets whose mean is the summary's; key 0 is the judge dict kept whole
    assert len(r["per_key"]) == 2 and r["per_key"][0]["frechet"] == j["frechet"]
    assert r["per_key"][0]["frechet"] != r["per_key"][1]["frechet"]
    assert r["summary"]["frechet"]["mean"] == pytest.approx(statistics.fmean(k["frechet"] for k in r["per_key"]))
    grid = np.asarray(Image.open(r["grid"]))
    assert grid.ndim == 2 and grid.shape[0] < grid.shape[1]  # 12 tiles in rows of 8: two rows, wider than tall
    md = TABLE["markdown"]([r], real.shape[0])
    assert "| ddim_10 | `ddim` | `ddim` | 10 | 2, " in md and "images/gen_ddim_10.png" in md
    assert "12 samples per row and prior key against the 40 held-out digits" in md
    # η: a row's fresh noise reaches the sampler (other samples from the same keys) and its table line
    r1 = TABLE["judge_row"](TABLE["Row"]("ddim_10_eta1", "ddim", steps=10, eta=1.0), wd, num=12, batch=6, seed=0,
                            images=str(tmp_path / "img"), real=real, classifier=features.load_digits_classifier())
    assert (r["eta"], r1["eta"]) == (0.0, 1.0) and r1["per_key"][0]["frechet"] != r["per_key"][0]["frechet"]
    assert "| ddim_10_eta1 | `ddim` | `ddim`, η = 1 | 10 |" in TABLE["markdown"]([r1], real.shape[0])
    # a checkpoint that is not there is refused, naming the step
    with pytest.raises(ValueError, match="step=7: no such checkpoint"):
        TABLE["judge_row"](TABLE["Row"]("x", "ddim", steps=2, step=7), wd, num=4, batch=4, seed=0,
                           images=str(tmp_path / "img"), real=real, classifier=features.load_digits_classifier())
