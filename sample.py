"""Pictures and numbers from a trained workdir.

    python sample.py --workdir=workdirs/cold_blur                          # generate 64 samples
    python sample.py --workdir=… --mode=restore [--severity=10] [--input=folder:my_blurry_pngs]
    python sample.py --workdir=… --mode=evaluate [--steps=5,10,20]        # Cold Diffusion table (+ sweep)
    python sample.py --workdir=… --mode=blend                             # between two prior draws
    python sample.py --workdir=… --mode=forward                           # x0 → x_t, no network involved
    python sample.py --workdir=… --mode=fill --mask=keep.png [--input=folder:…] [--jumps=10,10]  # inpainting
    python sample.py --workdir=… --labels=0-9 [--guidance=1]              # class-conditional: a row per class

Loads the config and EMA parameters of the newest (or ``--step``) checkpoint and writes to
<workdir>/samples/ (or --out); docs/EVALUATION.md lists every file. The modes live in jaxdiff.cli.
A workdir without checkpoints (or a bad flag) ends with one message and exit code 2.
"""
import sys

from absl import app, flags

from jaxdiff.cli.app import run  # noqa: F401  (sample.run(...) keeps working for scripts)
from jaxdiff.cli.options import MODES, RENAMED_MODES, SWEEPS

flags.DEFINE_string("workdir", None, "Training run directory (holds checkpoints/).")
flags.DEFINE_enum("mode", "generate", MODES + tuple(RENAMED_MODES), "What to produce (inpaint and interpolate "
                                                                   "were renamed fill and blend).")
flags.DEFINE_string("corrector", None, "Corrector (ddpm | ddim | dpmpp_2m | euler | heun | cold_naive | "
                                       "cold_improved | …); default: the config's "
                                       "sample.corrector (generate/blend: the process's generation "
                                       "corrector).")
flags.DEFINE_string("sampler", None, "Deprecated spelling of --corrector.")
flags.DEFINE_string("steps", None, "Reverse steps N per sample, N network calls (heun: 2N − 1; 0: every step; "
                                   "default: the config's sample.steps); "
                                   "evaluate: a list 5,10,20 sweeps.")
flags.DEFINE_string("spacing", None, "Timesteps of the reverse loop: linear | quadratic | trailing | leading "
                                     "(diffusers) | karras (σ, ρ = 7); default: the config's sample.spacing.")
flags.DEFINE_float("eta", None, "DDIM η (default: the config's).")
flags.DEFINE_integer("num", 0, "Images: generate 64, restore 32, blend 4 pairs, evaluate all held-out "
                               "images (at most 2000); 0 = that default.")
flags.DEFINE_integer("seed", 0, "Random seed of the prior draws, degradations and corrector noise.")
flags.DEFINE_integer("batch", 0, "Images per batch (rounded up to a multiple of the device count); 0: automatic.")
flags.DEFINE_integer("step", None, "Checkpoint step to load (default: the newest valid one).")
flags.DEFINE_integer("severity", None, "restore/evaluate: the t the degraded images are at (default T).")
flags.DEFINE_string("input", None, "restore: already-degraded images; fill: the images to fill (default: "
                                   "held-out images); folder:<path> or npz:<path>.")
flags.DEFINE_string("mask", None, "fill: the known region, a PNG (white = keep, black = fill) or an .npz "
                                  "('mask', one or one per image); binarised at 0.5, same H×W as the images.")
flags.DEFINE_string("jumps", None, "fill: RePaint's resampling j,r (jump back j steps, walk each segment r "
                                   "times), e.g. 10,10; default: none.")
flags.DEFINE_float("prior_noise", None, "Per-pixel noise of the fitted cold prior (blur: 0.002 = broken "
                                        "symmetry, 0 = perfect symmetry); default: the stored prior's.")
flags.DEFINE_bool("refit_prior", False, "Refit the generation prior even if <workdir>/prior.npz exists.")
flags.DEFINE_bool("force", False, "Generate even when the fitted prior does not match what the network saw at "
                                  "t = T (refused otherwise, exit 2).")
flags.DEFINE_enum("sweep", "auto", SWEEPS, "evaluate --steps=a,b,…: what the sweep measures (auto: restoration "
                                           "for cold processes, generation for Gaussian ones).")
flags.DEFINE_integer("frames", 10, "Frames of the reverse-trajectory picture and GIF (0: none).")
flags.DEFINE_string("out", None, "Output directory (default <workdir>/samples).")
flags.DEFINE_integer("label", None, "generate, fill: the class of every sample (a class-conditional model).")
flags.DEFINE_string("labels", None, "generate: classes such as 0-9 or 1,3,7: a grid with one row per class "
                                    "(--num images in all, default 8 per class).")
flags.DEFINE_float("guidance", None, "Classifier-free guidance w with --label/--labels, "
                                     "ε̃ = (1 + w) ε(x, c) − w ε(x, ∅); default: the config's sample.guidance.")
flags.DEFINE_string("features", None, "evaluate: the feature network of Fréchet/KID: inception (default when its "
                    "weights are present), digits, or a feature_net.npz.")


def main(argv) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from jaxdiff.cli.app import main as sample_main

    return sample_main(flags.FLAGS)


if __name__ == "__main__":
    flags.mark_flag_as_required("workdir")
    app.run(lambda argv: sys.exit(main(argv)))
