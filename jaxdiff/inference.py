"""A loaded run ready to sample: batches over every device, generation, restoration, degradation.

    inf = Inference(load_run("workdirs/cold_blur"))             # or Inference.from_workdir(...)
    x0 = inf.generate(key, num=64, prior=prior).x0              # (64, H, W, C) NumPy
    out = inf.restore(degraded, key=key, severity=inf.process.T)

Every batch has the same size B (a multiple of the device count; the last one is padded and trimmed), so
each program compiles once; it is sharded over a 1-D ('data',) mesh (``NamedSharding(mesh, P('data'))``),
the parameters replicated. Batch i uses the key ``fold_in(key, i)``: results depend on the batch size but
not on the number of devices. Under ``jax.distributed`` the mesh spans every process: each process puts the
rows of its own devices (every process holds the same host inputs, the prior drawn at the global shape) and
computes its share; results come back to every process as NumPy arrays of the whole batch.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, Optional, Sequence

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxdiff import sampling
from jaxdiff.experiment import NoCheckpointError, Run, load_run
from jaxdiff.processes import Process
from jaxdiff.sampling import restoration

__all__ = ["Inference", "GenerateResult", "pad_to", "to_host", "NoCheckpointError"]


def pad_to(x, size: int):
    """Pads a pytree of (n, …) arrays with zero rows to (size, …) (n ≤ size); None stays None."""

    def one(a):
        a = np.asarray(a)
        if a.ndim == 0 or a.shape[0] == size:
            return a
        return np.concatenate([a, np.zeros((size - a.shape[0],) + a.shape[1:], a.dtype)], axis=0)

    return jax.tree.map(one, x)


@dataclasses.dataclass(frozen=True)
class GenerateResult:
    """x0 (N, H, W, C) samples, x_T (N, H, W, C) prior draws, trajectory of the first batch (or None):
    dict(t=(M,), x_t=(M, B', H, W, C), x0_hat=(M, B', H, W, C)); seconds = wall time of the batches."""

    x0: np.ndarray
    x_T: np.ndarray
    trajectory: Optional[dict]
    seconds: float


@dataclasses.dataclass(eq=False)
class Inference:
    """Batched sampling over a loaded :class:`jaxdiff.experiment.Run` (its config, model, process, params)."""

    run: Run

    @classmethod
    def from_workdir(cls, workdir: str, *, step: Optional[int] = None, mesh=None) -> "Inference":
        """``Inference(load_run(workdir, step, mesh=mesh))``: see :func:`jaxdiff.experiment.load_run`."""
        return cls(load_run(workdir, step, mesh=mesh))

    @property
    def config(self):
        return self.run.config

    @property
    def model(self):
        return self.run.model

    @property
    def process(self) -> Process:
        return self.run.process

    @property
    def params(self):
        return self.run.params

    @property
    def mesh(self) -> jax.sharding.Mesh:
        return self.run.mesh

    @property
    def step(self) -> int:
        return self.run.step

    # --- pieces --------------------------------------------------------------------------
    @functools.cached_property
    def denoiser(self) -> Callable:
        """``(params, x_t, t) -> network output``; one object per Inference so jit caches hit."""
        model = self.model

        def denoiser(params, x, t):
            return model.apply({"params": params}, x, t, train=False)

        return denoiser

    @property
    def num_devices(self) -> int:
        return int(self.mesh.devices.size)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.run.image_shape

    @property
    def prediction(self) -> str:
        return str(self.config.diffusion.prediction)

    @property
    def clip(self) -> Optional[float]:
        c = float(self.config.sample.clip)
        return c if c > 0 else None

    def batch_size(self, requested: Optional[int], num: int) -> int:
        """``requested`` (0/None: min(num, 256)) rounded up to a multiple of the device count."""
        if requested is not None and (isinstance(requested, bool) or not isinstance(requested, (int, np.integer))
                                      or requested < 0):
            raise ValueError(f"batch must be an integer >= 0 (0: automatic), got {requested!r}")
        b = int(requested) if requested else min(max(int(num), 1), 256)
        n = self.num_devices
        return int(math.ceil(b / n) * n)

    def shard(self, tree):
        """Host arrays (leading dim B, a multiple of the device count) → arrays sharded P('data')."""
        sh = NamedSharding(self.mesh, P("data"))
        repl = NamedSharding(self.mesh, P())
        if jax.process_count() == 1:
            return jax.tree.map(lambda a: jax.device_put(a, sh if np.ndim(a) else repl), tree)

        def put(a):  # several processes: the same host value everywhere, each places its own devices' rows
            a = np.asarray(a)
            return jax.make_array_from_callback(a.shape, sh if a.ndim else repl, lambda idx: a[idx])

        return jax.tree.map(put, tree)

    # --- batched runs --------------------------------------------------------------------
    def map_batches(
        self,
        fn: Callable[[int, Any], Any],
        inputs: Any,
        num: int,
        batch: int,
        *,
        desc: str = "sample",
        progress: bool = True,
    ) -> list:
        """Calls ``fn(i, sharded_inputs_i)`` on batches of ``batch`` rows of ``inputs`` (a pytree of (num, …)
        host arrays, or None) and returns the per-batch outputs (pytrees of NumPy arrays, trimmed to the
        batch's true rows). A progress bar counts images."""
        from jaxdiff.progress import ProgressBar

        outs = []
        bar = ProgressBar(num, desc=desc, unit="img", enabled=progress and jax.process_index() == 0)  # counts images: tqdm shows img/s
        try:
            for i, start in enumerate(range(0, num, batch)):
                k = min(batch, num - start)
                chunk = None if inputs is None else jax.tree.map(lambda a: np.asarray(a)[start:start + k], inputs)
                res = fn(i, None if chunk is None else self.shard(pad_to(chunk, batch)))
                outs.append(_trim(res, k))
                bar.update(start + k)
        finally:
            bar.close()
        return outs

    def run_sampler(self, x_T, *, key, corrector: Optional[str] = None, timesteps=None, eta: Optional[float] = None,
                    aux: Any = None, return_every: int = 0, labels=None, guidance: float = 0.0) -> sampling.SampleResult:
        """One (sharded) batch through :func:`jaxdiff.sampling.sample` with the config's defaults.

        ``labels`` (B,) int32 (sharded like x_T) condition a class-conditional model, guided with w = ``guidance``
        (:mod:`jaxdiff.sampling.guidance`: labels and w are traced, so new values reuse the program)."""
        from jaxdiff.sampling import guidance as guidance_lib

        s = self.config.sample
        denoiser, params = self.denoiser, self.params
        if labels is not None:
            denoiser, params = guidance_lib.guided_params(self.model, self.params, labels, guidance)
        return sampling.sample(
            denoiser, params, key, x_T, process=self.process,
            corrector=corrector or str(s.corrector), timesteps=timesteps, prediction=self.prediction,
            clip=self.clip, eta=float(s.eta) if eta is None else float(eta), aux=aux, return_every=return_every,
        )

    def timesteps(self, steps: Optional[int] = None, spacing: Optional[str] = None) -> np.ndarray:
        """The reverse sequence for ``steps`` steps (None: the config's ``sample.steps``; 0: all T), spaced by
        ``spacing`` (None: the config's ``sample.spacing``)."""
        T = int(self.process.T)
        n = int(self.config.sample.steps) if steps is None else int(steps)
        if not 0 <= n <= T:
            raise ValueError(f"steps must be in [0, T={T}] (0: every step), got {n}")
        sp = str(self.config.sample.get("spacing", "linear")) if spacing is None else spacing
        return sampling.timesteps_for(self.process, n or None, sp)

    def generate(
        self,
        key: jax.Array,
        num: int,
        *,
        prior,
        batch: Optional[int] = None,
        corrector: Optional[str] = None,
        steps: Optional[int] = None,
        eta: Optional[float] = None,
        trajectory_frames: int = 0,
        x_T: Optional[np.ndarray] = None,
        desc: str = "generate",
        progress: bool = True,
        labels: Optional[np.ndarray] = None,
        guidance: Optional[float] = None,
        spacing: Optional[str] = None,
    ) -> GenerateResult:
        """``num`` samples from ``prior`` (a :class:`jaxdiff.priors.Prior`), or from given ``x_T`` (num, H, W, C).

        Batch i draws x_T from ``fold_in(key, i)`` and the aux the degradation needs from x_T
        (:meth:`jaxdiff.processes.Process.generation_aux`). ``trajectory_frames`` > 0 records about that many frames
        of the first batch (the other batches run without recording). ``labels`` (num,) int: the class of each
        sample (a conditional model), guided with w = ``guidance`` (default: the config's ``sample.guidance``).
        ``spacing``: the timestep spacing (default: the config's ``sample.spacing``).
        """
        import time

        ts = self.timesteps(steps, spacing)
        n_steps = len(ts) - 1
        every = max(1, math.ceil(n_steps / trajectory_frames)) if trajectory_frames else 0
        B = self.batch_size(batch, num)
        x_T_all = x_T
        if labels is not None:
            from jaxdiff.sampling.guidance import check_labels_for

            w = float(self.config.sample.get("guidance", 0.0)) if guidance is None else float(guidance)
            labels = check_labels_for(self.model, np.asarray(labels).reshape(-1), guidance=w)
            if labels.shape[0] != num:
                raise ValueError(f"labels: {labels.shape[0]} labels for num={num} samples")

        def one(i, chunk):
            k_prior, k_aux, k_sample = jax.random.split(jax.random.fold_in(key, i), 3)
            lab = None
            if isinstance(chunk, dict):
                chunk, lab = chunk.get("x_T"), chunk["labels"]
            xT = chunk if chunk is not None else self.shard(prior.sample(k_prior, B))
            aux = self.process.generation_aux(xT, k_aux)
            # Only the first batch records frames: the others run the trajectory-free program, so memory stays
            # O(B) however many frames are asked for (at the price of a second compilation).
            rec = every if i == 0 else 0
            cond = {} if lab is None else {"labels": lab, "guidance": w}
            res = self.run_sampler(xT, key=k_sample, corrector=corrector, timesteps=ts, eta=eta, aux=aux,
                                   return_every=rec, **cond)
            return {"x0": res.x0, "x_T": xT, "traj": res.trajectory} if rec else {"x0": res.x0, "x_T": xT}

        t0 = time.perf_counter()
        inputs = None if x_T_all is None else np.asarray(x_T_all, np.float32)
        if labels is not None:
            inputs = {"labels": labels} if inputs is None else {"x_T": inputs, "labels": labels}
        outs = self.map_batches(one, inputs, num, B, desc=desc, progress=progress)
        seconds = time.perf_counter() - t0
        traj = None
        if every:
            tr = outs[0]["traj"]
            traj = {"t": np.asarray(tr["t"]), "x_t": np.asarray(tr["x_t"]), "x0_hat": np.asarray(tr["x0_hat"])}
        return GenerateResult(
            x0=np.concatenate([o["x0"] for o in outs]), x_T=np.concatenate([o["x_T"] for o in outs]),
            trajectory=traj, seconds=seconds,
        )

    def restore(
        self,
        x_t: np.ndarray,
        *,
        key: jax.Array,
        severity: Optional[int] = None,
        correctors: Optional[Sequence[str]] = None,
        steps: Optional[int] = None,
        eta: Optional[float] = None,
        aux: Any = None,
        batch: Optional[int] = None,
        desc: str = "restore",
        progress: bool = True,
    ) -> dict[str, np.ndarray]:
        """{"direct": …, <corrector>: …} for degraded images x_t (N, H, W, C) at ``severity`` (default T).

        ``correctors`` default: :func:`jaxdiff.sampling.restoration.default_correctors`; ``steps`` default: every step
        from the severity (Cold Diffusion's tables) — pass the config's ``sample.steps`` to follow it.
        """
        s = restoration.check_severity(severity, int(self.process.T))
        corr = tuple(correctors or restoration.default_correctors(self.process, str(self.config.sample.corrector)))
        n = int(np.shape(x_t)[0])
        B = self.batch_size(batch, n)
        e = float(self.config.sample.eta) if eta is None else float(eta)

        def one(i, chunk):
            return restoration.restore(
                self.denoiser, self.params, chunk["x"], process=self.process, key=jax.random.fold_in(key, i),
                severity=s, correctors=corr, prediction=self.prediction, clip=self.clip, steps=steps, eta=e,
                aux=chunk.get("aux"),
            )

        inputs = {"x": np.asarray(x_t, np.float32)}
        if aux is not None:
            inputs["aux"] = aux
        outs = self.map_batches(one, inputs, n, B, desc=desc, progress=progress)
        return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}

    def degrade(self, x0: np.ndarray, *, key: jax.Array, severity: Optional[int] = None, aux: Any = None,
                batch: Optional[int] = None) -> np.ndarray:
        """x_s = F_s(x0; aux) + σ_s ε for images x0 (N, H, W, C), in batches (batch i: ``fold_in(key, i)``)."""
        s = restoration.check_severity(severity, int(self.process.T))
        n = int(np.shape(x0)[0])
        B = self.batch_size(batch, n)
        inputs = {"x": np.asarray(x0, np.float32)}
        if aux is not None:
            inputs["aux"] = aux

        def one(i, chunk):
            return restoration.degrade(self.process, chunk["x"], s, jax.random.fold_in(key, i), chunk.get("aux"))

        return np.concatenate(self.map_batches(one, inputs, n, B, desc="degrade", progress=False))


def to_host(a) -> np.ndarray:
    """A (possibly multi-process) array → the whole value as NumPy on this process."""
    if isinstance(a, jax.Array) and not a.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(a, tiled=True))
    return np.asarray(a)


def _trim(tree, k: int):
    """Pytree of (B, …) device arrays → NumPy, first k rows; the trajectory dict keeps its frame axis."""

    def one(path, a):
        a = to_host(a)
        keys = [getattr(p, "key", None) for p in path]
        if "traj" in keys:
            name = keys[-1]
            return a if name == "t" else a[:, :k]
        return a[:k] if a.ndim else a

    return jax.tree_util.tree_map_with_path(one, tree)
