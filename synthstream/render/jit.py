"""One place for Numba's options, so nopython/nogil/parallel/cache cannot drift apart between kernels.

`ngjit` is for per-sample (serial) kernels, `ngjit_parallel` for batch drivers that `prange` over samples.
fastmath stays off: reassociation could make images differ between builds and machines. `error_model="numpy"`:
a float division by zero gives inf/nan (IEEE) instead of raising, so a division needs no zero test and a
branch-free loop that divides (and drops the lanes it does not use) can vectorise; no kernel relies on the
exception.
"""

import hashlib
import os
from pathlib import Path

import numba


def kernel_sources() -> list[Path]:
    """The modules whose text can change compiled code: everything under synthstream/render/ (kernels and the
    constants they freeze at compile time), synthstream/style.py (its field table defines the render-parameter
    offsets, `render/params.py`) plus any other synthstream module that uses `ngjit` (synthstream/trace.py's
    latent sampler). CLI, trainer or docs edits are not among them."""
    package = Path(__file__).resolve().parents[1]        # synthstream/
    render = package / "render"
    paths = set(render.rglob("*.py")) | {package / "style.py"}
    paths.update(p for p in package.rglob("*.py") if b"ngjit" in p.read_bytes())
    return sorted(paths)


def _source_keyed_cache_dir() -> str:
    """Numba's cache checks only the timestamp of the file holding the top-level kernel, not the files of the
    kernels it calls, so an edited callee could run stale. Keying the cache folder on the sources of every
    kernel module (and this Numba) makes any edit of a kernel start a fresh cache, and no other edit."""
    package = Path(__file__).resolve().parents[1]
    h = hashlib.sha256(numba.__version__.encode())
    for path in kernel_sources():
        h.update(str(path.relative_to(package)).encode())
        h.update(path.read_bytes())
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "synthstream"
    return str(base / f"numba-{h.hexdigest()[:16]}")


if not os.environ.get("NUMBA_CACHE_DIR"):               # a user's explicit choice wins
    numba.config.CACHE_DIR = _source_keyed_cache_dir()

ngjit = numba.njit(nogil=True, cache=True, error_model="numpy")
ngjit_parallel = numba.njit(nogil=True, cache=True, parallel=True, error_model="numpy")


def set_threads(n: int) -> int:
    """Set Numba's thread count (a Ray actor passes its CPU allotment). Returns the count in force."""
    n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    return n


def get_threads() -> int:
    return numba.get_num_threads()
