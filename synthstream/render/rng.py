"""Counter-based random numbers: every draw is a pure hash of (key, counter).

No generator state travels between samples or threads, so a sample's draws depend only on its key, and its
key only on (seed, index): the same image comes out on any worker, node or thread count. The mixer is
SplitMix64's finaliser (Steele, Lea, Flood 2014). Normals read a fixed table with 16 bits of hash per draw
(four draws per hash, `normal_from_bits`), which is ~10x cheaper than Box-Muller per pixel.

A sample key splits into named streams, one per purpose (`stream_key(key, STREAM_X)`), and a stream into
numbered sub-streams, one per instance (`substream(key, STREAM_X, i)`: character i, stroke i, a field's
axis), so adding, removing or re-counting the draws of one purpose or instance never shifts another's.
Within a stream or sub-stream draws are counted from 0; the render pipeline names its counters.
"""

import numpy as np

from synthstream.render.jit import ngjit

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11, _S16 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11), np.uint64(16)
_MASK16 = np.uint64(0xFFFF)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53

# The streams of a sample key. Never renumber one: that changes every image (or trace) drawn from it.
STREAM_LATENT = 1     # traced latents (synthstream/trace.py)
STREAM_LAYOUT = 2     # text position
STREAM_ELASTIC = 3    # elastic displacement: alpha, sigma; sub-streams AXIS_X, AXIS_Y hold its grid normals
STREAM_FINE = 4       # fine displacement: as elastic
STREAM_SHEAR = 5      # sinusoidal shear
STREAM_INK = 6        # grey levels, opacity, noise level
STREAM_NOISE = 7      # pixel noise (normals)
STREAM_CLUTTER = 8    # how many strokes, ellipses, dots, ghosts, drips, dashes
STREAM_CHAR = 9       # sub-stream per character: its layout draws (the pipeline's CHAR_*)
STREAM_STROKE = 10    # sub-stream per Bezier stroke
STREAM_ELLIPSE = 11   # sub-stream per ellipse
STREAM_DOT = 12       # sub-stream per dot
STREAM_BLUR = 13      # blur sigma
STREAM_GHOST = 14     # sub-stream per ghost outline
STREAM_DRIP = 15      # sub-stream per drip
STREAM_DASH = 16      # sub-stream per dash

AXIS_X, AXIS_Y = 0, 1  # sub-streams of a displacement field's stream
_SUBSTREAM_SALT = np.uint64(0x5AB5_7EA3_0000_0000)

NOISE_TABLE_BITS = 16


def normal_table() -> np.ndarray:
    """2**16 standard normals from a fixed PCG64 seed (platform-independent), float32."""
    return np.random.default_rng(0x5EED).standard_normal(1 << NOISE_TABLE_BITS).astype(np.float32)


@ngjit
def mix64(z):
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@ngjit
def hash2(key, j):
    """A uint64 from (uint64 key, int counter)."""
    return mix64(key + (np.uint64(j) + np.uint64(1)) * GOLDEN)


@ngjit
def stream_key(key, purpose):
    """The key of one named stream (STREAM_*) of a sample key."""
    return hash2(key, purpose)


@ngjit
def substream(key, purpose, instance):
    """The key of instance `instance` (>= 0) of stream `purpose`: independent of every other (purpose,
    instance) and of the draws made directly from `stream_key(key, purpose)`."""
    return hash2(stream_key(key, purpose) ^ _SUBSTREAM_SALT, instance)


@ngjit
def uniform(key, j):
    """U[0, 1) as float64."""
    return np.float64(hash2(key, j) >> _S11) * _INV53


@ngjit
def uniform_range(key, j, lo, hi):
    return lo + (hi - lo) * uniform(key, j)


@ngjit
def randint(key, j, lo, hi):
    """Uniform integer in the inclusive range [lo, hi]."""
    span = np.int64(hi) - np.int64(lo) + 1
    k = np.int64(uniform(key, j) * span)
    return np.int64(lo) + min(k, span - 1)


@ngjit
def normal_from_bits(h, r, table):
    """The r-th (0..3) standard normal held in the 64 hash bits h: the table entry its 16 bits pick."""
    return table[(h >> (_S16 * np.uint64(r))) & _MASK16]


@ngjit
def table_normal(key, j, table):
    """Standard normal draw j of a key: 16 bits of hash2(key, j >> 2)."""
    return normal_from_bits(hash2(key, j >> 2), j & 3, table)


def sample_keys(seed: int, indices: np.ndarray) -> np.ndarray:
    """Per-sample keys uint64[n] for global sample indices under a run seed (vectorised, no Numba needed)."""
    if not 0 <= int(seed) < 2**64:
        raise ValueError(f"seed {seed} must be in [0, 2**64)")
    base = _mix64_np(np.array([int(seed)], np.uint64) + GOLDEN)
    return _mix64_np(base + (np.asarray(indices, np.uint64) + np.uint64(1)) * GOLDEN)


def _mix64_np(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
        return z ^ (z >> _S31)


@ngjit
def fill_normals(out, key, table, scale):
    """out[j] = scale * table_normal(key, j, table) for all j, hashing once per four draws."""
    n = out.shape[0]
    s16, s32, s48 = _S16, _S16 + _S16, _S16 + _S16 + _S16
    nq = n // 4
    hashes = np.empty(nq, np.uint64)
    for q in range(nq):                     # the hashes first: a loop without loads, which vectorises
        hashes[q] = hash2(key, q)
    for q in range(nq):                     # whole quads, unrolled: the table reads (a gather, scalar)
        h = hashes[q]
        j = 4 * q
        out[j] = table[h & _MASK16]
        out[j + 1] = table[(h >> s16) & _MASK16]
        out[j + 2] = table[(h >> s32) & _MASK16]
        out[j + 3] = table[(h >> s48) & _MASK16]
    q = n // 4
    if 4 * q < n:
        h = hash2(key, q)
        for r in range(n - 4 * q):
            out[4 * q + r] = normal_from_bits(h, r, table)
    if scale != 1.0:                        # then the scaling, which vectorises: float32(scale * float64(t)),
        for j in range(n):                  # the same operations as scaling each read in place
            out[j] = scale * out[j]
