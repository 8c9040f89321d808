"""Trains a jaxdiff model.

    python train.py --config=configs/cold_blur.py                          # digits, minutes on a CPU
    python train.py --config=configs/cold_blur.py:mnist --workdir=runs/x   # a data set variant
    python train.py --config=configs/cold_blur.py --config.train.num_steps=5

The workdir (default: workdirs/<config name>[_<variant>]) receives checkpoints/, metrics.jsonl, tb/ and
samples/; an existing workdir is resumed from its latest valid checkpoint. SIGTERM/SIGINT stop after the
current step with a checkpoint.

Exit codes (docs/RELIABILITY.md): 0 finished, or stopped by SIGTERM/SIGINT with a checkpoint of the step
reached; 2 bad config or data (one message, nothing built); 3 too many consecutive non-finite steps
(train.max_consecutive_nonfinite; nothing saved after them); 4 a checkpoint problem (none of the saved
steps restores, or the final one could not be written; the older ones are kept). A --config that cannot
be loaded, or an override of a field that does not exist or with a value of the wrong type, is one line
and exit code 2 as well.
"""
import sys

from absl import app, flags
from ml_collections import config_flags

from jaxdiff import console
from jaxdiff.config.overrides import parse_flags

# Heavy imports (jax, orbax, tfds) wait until main() so that --help is fast.

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py[:variant]).",
                                          lock_config=True)
flags.DEFINE_string("workdir", None, "Run directory (default: workdirs/<config name>[_<variant>]).")
flags.mark_flags_as_required(["config"])
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    console.configure()  # progress, results, jaxdiff's messages; library logs only with --verbosity=1 or more
    from jaxdiff.checkpoints import CheckpointError
    from jaxdiff.config import ConfigError, default_workdir
    from jaxdiff.cpu.devices import CpuDevicesError
    from jaxdiff.cpu.xla_options import XlaOptionsError
    from jaxdiff.train.lock import WorkdirBusyError

    workdir = FLAGS.workdir or default_workdir(config_flags.get_config_filename(FLAGS["config"]))
    from jaxdiff.data import DataError
    from jaxdiff.train.loop import train_and_evaluate

    # The expected failures end with one message and a documented code; anything else keeps its traceback.
    try:
        train_and_evaluate(_CONFIG.value, workdir)
    except (ConfigError, DataError, CpuDevicesError, XlaOptionsError, WorkdirBusyError) as e:
        _fail(e, 2)
    except FloatingPointError as e:
        _fail(e, 3)
    except CheckpointError as e:
        _fail(e, 4)


def _fail(e: Exception, code: int):
    print(f"train.py: {e}", file=sys.stderr, flush=True)
    sys.exit(code)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
