"""What train.py, sample.py and the scripts print (jaxdiff.console): progress, results, one-line errors and
warnings by default; library INFO (orbax, absl, jax) only with --verbosity=1 or higher."""
import os
import re
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# absl's prefix on a record below WARNING: I/D, MMDD, time, thread, file:line]
ABSL_INFO = re.compile(r"^[ID]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ (\S+):\d+\] ", re.M)

PROGRAM = """
import logging
import sys

import tqdm
from absl import logging as absl_logging

from jaxdiff import console


def body():
    bar = tqdm.tqdm(total=4, desc="work", file=sys.stderr, mininterval=0)
    bar.update(1)
    logging.getLogger("jaxdiff.fake").info("own info")
    bar.update(1)
    logging.getLogger("jaxdiff.fake").warning("own warning")
    logging.getLogger("orbax.fake").info("library info")
    logging.getLogger("orbax.fake").debug("library debug")
    logging.getLogger("orbax.fake").warning("library warning")
    absl_logging.info("absl info")
    bar.update(2)
    bar.close()
    print("result line")
"""

ABSL_MAIN = """
from absl import app


def main(argv):
    console.configure()
    body()


app.run(main)
"""

ARGPARSE_MAIN = """
import argparse

p = argparse.ArgumentParser()
console.add_verbosity_flag(p)
console.configure(p.parse_args().verbosity)
body()
"""


def _run(main: str, *args: str):
    code = textwrap.dedent(PROGRAM) + textwrap.dedent(main)
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _lines(text: str) -> list:
    """Non-blank lines, a progress bar's carriage-return redraws split into lines of their own."""
    return [ln.strip() for ln in re.split(r"[\r\n]", text) if ln.strip()]


def _messages(text: str) -> list:
    """The lines that are not a progress bar."""
    return [ln for ln in _lines(text) if not re.match(r"^\w+: +\d+%\|", ln)]


@pytest.mark.parametrize("main", [ABSL_MAIN, ARGPARSE_MAIN], ids=["absl", "argparse"])
def test_default_shows_own_messages_and_warnings_not_library_info(main):
    r = _run(main)
    assert r.stdout == "result line\n"
    assert _messages(r.stderr) == ["own info", "warning: own warning", "warning (orbax): library warning"]
    # each message starts a line of its own, never in the middle of the bar
    assert re.search(r"(^|\n)own info\n", r.stderr), r.stderr
    assert "work: 100%" in r.stderr


@pytest.mark.parametrize("main", [ABSL_MAIN, ARGPARSE_MAIN], ids=["absl", "argparse"])
def test_verbosity_minus_one_leaves_out_own_info(main):
    r = _run(main, "--verbosity=-1")
    assert r.stdout == "result line\n"
    assert _messages(r.stderr) == ["warning: own warning", "warning (orbax): library warning"]


@pytest.mark.parametrize("main", [ABSL_MAIN, ARGPARSE_MAIN], ids=["absl", "argparse"])
def test_verbosity_one_shows_every_library_record_with_absl_prefixes(main):
    r = _run(main, "--verbosity=1")
    assert r.stdout == "result line\n"
    text = r.stderr
    for msg in ("own info", "library info", "library debug", "absl info"):
        assert re.search(r"^[ID]\d{4} .*\] " + msg + "$", text, re.M), (msg, text)
    for msg in ("own warning", "library warning"):
        assert re.search(r"^W\d{4} .*\] " + msg + "$", text, re.M), (msg, text)


def test_logger_levels_flag_still_wins():
    """absl's --logger_levels names a logger's level; configure() leaves a named logger alone."""
    r = _run(ABSL_MAIN, "--logger_levels=jaxdiff:WARNING")
    assert _messages(r.stderr) == ["warning: own warning", "warning (orbax): library warning"]


# --- the real commands on a tiny run ----------------------------------------------------------------------------

TINY = """
import runpy


def get_config():
    c = runpy.run_path({default!r})["get_config"]()
    c.diffusion.T = 5
    c.model.update(dict(ch=8, ch_mult=(1,), num_res_blocks=1, attn_resolutions=(), num_groups=4))
    c.train.update(dict(batch_size=8, num_steps=2, log_every=1, checkpoint_every=1, keep_checkpoints=3,
                        num_sample_images=4, warmup_steps=0))
    return c
"""


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("console") / "tiny_blur.py"
    path.write_text(TINY.format(default=os.path.join(ROOT, "configs", "cold_blur.py")))
    return str(path)


def _cli(script: str, *args: str):
    r = subprocess.run([sys.executable, os.path.join(ROOT, script), *args], capture_output=True, text=True,
                       cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _library_info(text: str) -> list:
    """Files named by absl-prefixed INFO/DEBUG lines that are not jaxdiff's."""
    own = {os.path.basename(p) for p, _, fs in os.walk(os.path.join(ROOT, "jaxdiff")) for p in fs}
    return [m.group(1) for m in ABSL_INFO.finditer(text) if m.group(1) not in own]


@pytest.mark.slow
def test_train_and_sample_print_results_and_library_logs_only_when_verbose(tiny_config, tmp_path):
    wd = str(tmp_path / "run")
    # train.py, default: the bar, jaxdiff's lines, the result; not one line of orbax or absl
    r = _cli("train.py", f"--config={tiny_config}", f"--workdir={wd}")
    assert r.stdout.startswith("Finished at step 2/2. Checkpoints: ")
    assert re.search(r"train: 100%\|.*2/2 .*loss=", r.stderr), r.stderr
    assert not ABSL_INFO.search(r.stderr) and "orbax" not in r.stderr, r.stderr
    assert f"samples: {wd}/samples/step_000002.png" in _messages(r.stderr)

    # --verbosity=1 (resuming to step 4): orbax's checkpoint manager speaks; the result is still there
    r = _cli("train.py", f"--config={tiny_config}", f"--workdir={wd}", "--config.train.num_steps=4", "--verbosity=1")
    assert r.stdout.startswith("Finished at step 4/4. Checkpoints: ")
    assert "checkpoint_manager.py" in _library_info(r.stderr), r.stderr[-3000:]
    assert re.search(r"\] resumed from .* at step 2$", r.stderr, re.M)

    # sample.py --mode=restore, default: the file list on stdout; stderr the load line and the bar only
    r = _cli("sample.py", f"--workdir={wd}", "--mode=restore", "--num=8")
    files = r.stdout.splitlines()
    assert [f.split(": ")[0] for f in files] == ["strip", "npz"]
    assert all(os.path.isfile(f.split(": ")[1]) for f in files)
    messages = _messages(r.stderr)
    assert len(messages) == 1, r.stderr
    assert re.fullmatch(rf"loaded step 4 of {re.escape(wd)} \(\d+ devices\)", messages[0]), r.stderr
    assert "restore: 100%" in r.stderr

    r = _cli("sample.py", f"--workdir={wd}", "--mode=restore", "--num=8", "--verbosity=1")
    assert r.stdout.splitlines() == files
    # load_run reads through orbax's Checkpointer (no CheckpointManager on the read side)
    assert {"checkpointer.py", "xla_bridge.py"} <= set(_library_info(r.stderr)), r.stderr[-3000:]
