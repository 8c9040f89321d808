"""Defaults every experiment config imports and overrides: the layout of every config, locked.

The main job, ``python train.py --config=configs/cold_blur.py``, trains on scikit-learn's digits
(shipped with the package: no network), small enough to finish in minutes on two CPU cores.
The returned ConfigDict is locked: an unknown or mistyped field is an error naming the field.
``diffusion.degradation_params`` holds every parameter of the degradation, at its default unless set here.
"""
import ml_collections

from jaxdiff.config.files import degradation_params


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0

    # --- data -----------------------------------------------------------------------------
    c.data = d = ml_collections.ConfigDict()
    d.source = "digits"  # digits | tfds:<name>[:split] | folder:<path> | npz:<path>
    d.eval_split = "test"  # held-out part (digits: a fixed 10 % split)
    d.image_size = 16
    d.channels = 1
    d.random_flip = False
    d.download = False  # tfds: never fetch unless asked
    d.end_source = ""  # interpolation (animorphosis): the data the forward process moves toward

    # --- diffusion: x_t = α_t·D_t(x0) + σ_t·ε, a degradation D and a noise schedule (α, σ) ------------
    c.diffusion = f = ml_collections.ConfigDict()
    f.T = 20
    # D_t: identity (hot diffusion, flow, EDM) | blur | heat | dct_blur | inpaint | fade | superres | … (registered)
    f.degradation = "blur"
    f.degradation_params = degradation_params(
        "blur", {"kernel_size": 11, "std": 7.0, "routine": "constant", "padding": "circular"})
    # (α_t, σ_t): linear | scaled_linear | cosine | offset_cosine | sigmoid (variance preserving) |
    # constant (α = 1, σ = std: cold diffusion) | flow (α = 1 − τ, σ = τ) | ve (α = 1, σ_min … σ_max)
    f.schedule = "constant"
    f.schedule_params = ml_collections.ConfigDict()
    f.prediction = "x0"  # eps | x0 | v | velocity | edm  (what the process allows: x0 always)
    f.loss = "l1"  # l1 | l2
    f.loss_weighting = "none"  # none | snr | min_snr | truncated_snr | edm | soft
    f.t_sampling = "uniform"  # training t: uniform | logit_normal | log_normal
    f.t_sampling_params = ml_collections.ConfigDict()

    # --- model ----------------------------------------------------------------------------
    c.model = m = ml_collections.ConfigDict()
    m.ch = 16
    m.ch_mult = (1, 2, 2)
    m.num_res_blocks = 1
    m.attn_resolutions = ()
    m.dropout = 0.0
    m.num_groups = 8
    m.dtype = "float32"
    m.num_classes = 0  # class-conditional UNet with this many labels (0: unconditional; needs a labelled source)

    # --- training -------------------------------------------------------------------------
    c.train = t = ml_collections.ConfigDict()
    t.batch_size = 64  # global batch, split over every device
    t.grad_accum_steps = 1  # micro-batches per update (batch_size / this each, gradients averaged); 1: off
    t.num_steps = 1000
    t.learning_rate = 2e-3
    t.warmup_steps = 100
    t.weight_decay = 0.0
    t.grad_clip_norm = 1.0  # 0: off
    t.ema_decay = 0.995
    t.ema_every = 1
    t.ema_start = 0
    t.ema_warmup = True  # decay min(ema_decay, (1 + n)/(10 + n)) early on
    t.log_every = 50
    t.checkpoint_every = 250
    t.keep_checkpoints = 3
    t.num_sample_images = 64  # sample grid at each checkpoint
    t.eval_every = 0  # FID/KID of eval_samples EMA samples (or restorations) every this many steps; 0: off
    t.eval_samples = 256
    t.eval_features = ""  # inception | digits | <feature_net.npz>; "": Inception when its weights are cached
    t.max_consecutive_nonfinite = 20
    t.label_dropout = 0.1  # conditional models: share of labels replaced by the null label (classifier-free guidance)
    t.distributed = False  # jax.distributed.initialize() (also when the usual env vars ask for it)

    # --- sampling -------------------------------------------------------------------------
    c.sample = s = ml_collections.ConfigDict()
    s.corrector = "cold_improved"  # ddim (= cold_improved) | ddpm | cold_naive | dpmpp_2m | euler | heun
    s.steps = 0  # 0: every timestep; else a strided subset of this many steps
    s.spacing = "linear"  # timesteps of a strided subset: linear | quadratic | trailing | leading | karras
    s.eta = 0.0
    s.clip = 1.0  # clip x̂0 to [−clip, clip]; 0: off
    s.prior_noise = 0.002  # cold generation: per-pixel "broken symmetry" noise
    s.guidance = 0.0  # conditional models: classifier-free guidance w, ε̃ = (1 + w) ε(x, c) − w ε(x, ∅)
    c.lock()
    return c
