"""The generator as a Ray Data dataset, for pipelines that mix synthetic and real data in Ray Data.

    ds = read_synthstream(load_style("wikipedia"), seed=0, start=0, stop=100_000, concurrency=2,
                          columns=("image", "index"))
    for batch in ds.iter_torch_batches(batch_size=256, dtypes=None): ...

Rows have the stream's Arrow schema (`synthstream.batch`): `image` (a fixed-shape uint8 tensor column, kept
Arrow-native), `text`, one column per traced address, `log_prob`, `seed`, `index`. Row i is sample
`start + i` of `seed`, byte-identical to `generate(style, seed, start + i, 1)` wherever it renders. This is
how Ray Data users would express the generator (block numbers mapped by a stateful class UDF on
`concurrency` actors); `synthstream bench stream` times it against `synthstream.stream`.
"""

from __future__ import annotations

import logging
import math

import pyarrow as pa

from synthstream.errors import UserError
from synthstream.limits import MAX_INDEX
from synthstream.style import Style

DEFAULT_ROWS_PER_BLOCK = 1024
MAX_BLOCKS = 1 << 16          # one input block (a small object the driver puts) per block


class RenderBlocks:
    """Ray Data callable class: a batch of block numbers -> the rows of those blocks (one actor, warm JIT)."""

    def __init__(self, style: Style, seed: int, start: int, stop: int, rows_per_block: int, threads: int = 1,
                 columns: tuple[str, ...] | None = None):
        from synthstream.generate import generate
        from synthstream.render.jit import set_threads

        self.style, self.seed, self.start, self.stop, self.rows = style, seed, start, stop, rows_per_block
        self.threads, self.columns = threads, list(columns) if columns else None
        self._generate, self._set_threads = generate, set_threads
        set_threads(threads)
        generate(style, seed, 0, 2)                          # JIT cache load and glyph atlas, once per actor

    def __call__(self, blocks: pa.Table) -> pa.Table:
        from synthstream.batch import to_record_batch

        self._set_threads(self.threads)    # Numba's count is per calling thread, and Ray Data calls from another
        parts = []
        for b in blocks.column("id").to_pylist():
            first = self.start + b * self.rows
            images, traces = self._generate(self.style, self.seed, first, min(self.rows, self.stop - first))
            parts.append(to_record_batch(self.style, images, traces, self.seed))
        table = pa.Table.from_batches(parts)
        return table.select(self.columns) if self.columns else table


def read_synthstream(style: Style, seed: int = 0, start: int = 0, stop: int = 1 << 20, *,
                     rows_per_block: int = DEFAULT_ROWS_PER_BLOCK, concurrency: int = 1,
                     num_cpus: float = 1.0, columns: tuple[str, ...] | None = None):
    """A `ray.data.Dataset` of samples [start, stop) of `seed`, rendered by `concurrency` actors of
    `num_cpus` CPUs each, `rows_per_block` rows per block; `columns` keeps only those (e.g. ("image", "index")
    for `iter_torch_batches`, which cannot convert `text`). Keep the column choice here rather than in a
    later `drop_columns`/`select_columns`: those are task operators that each want a CPU; with the render
    actors holding every CPU, the rendered blocks queued for it filled Ray Data's object-store budget and the
    dataset hung (`benchmarks/raydata_blocks.py --drop-text --rows 832`, 2 CPUs).

    Raises:
        UserError: a bad range, block size or concurrency (one line naming the argument).
    """
    import ray.data

    if not isinstance(style, Style):
        raise UserError(f"style must be a synthstream.style.Style (load_style(...)), not {type(style).__name__}")
    if not (isinstance(start, int) and isinstance(stop, int) and 0 <= start < stop <= MAX_INDEX):
        raise UserError(f"start = {start!r}, stop = {stop!r}: need 0 <= start < stop <= {MAX_INDEX}")
    if not (isinstance(rows_per_block, int) and 1 <= rows_per_block <= 1 << 20):
        raise UserError(f"rows_per_block = {rows_per_block!r} must be an integer in [1, 2**20]")
    if columns is not None:
        from synthstream.batch import schema

        names = schema(style, seed).names
        if not columns or set(columns) - set(names):
            raise UserError(f"columns = {columns!r}: choose one or more of {names}")
    if not (isinstance(concurrency, int) and concurrency >= 1):
        raise UserError(f"concurrency = {concurrency!r} must be a positive integer")
    blocks = math.ceil((stop - start) / rows_per_block)
    if blocks > MAX_BLOCKS:
        raise UserError(f"[start, stop) makes {blocks} blocks of rows_per_block = {rows_per_block}; at most "
                        f"{MAX_BLOCKS}: raise rows_per_block or read a shorter range")
    # One block number per input block, so each UDF call renders one block and Ray Data streams it on. The
    # numbers come from `from_items` (put in the object store by the driver), not `range`: range's read tasks
    # each want a CPU, and with the render actors holding every CPU of a small cluster they never ran (no
    # first batch in 120 s on 2 CPUs with 2 actors: `benchmarks/raydata_blocks.py --source range`).
    return ray.data.from_items([{"id": b} for b in range(blocks)], override_num_blocks=blocks).map_batches(
        RenderBlocks, fn_constructor_args=(style, seed, start, stop, rows_per_block, max(1, int(num_cpus)), columns),
        batch_size=1, batch_format="pyarrow", zero_copy_batch=True, concurrency=concurrency, num_cpus=num_cpus)


def quiet_ray_data() -> None:
    """No progress bars from Ray Data (benchmarks and tests print their own figures)."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
