"""The stream: a pool of Ray generator actors renders Arrow batches; each consumer pulls them through its
own bounded queue of object refs. Training data never touches disk.

Design
------
* **Who renders what.** Consumer rank r of W reads its k-th training batch as global batch g = k * W + r,
  which holds sample indices [g * B, (g + 1) * B). So the ranks' shards are disjoint, no index is produced
  twice, and the whole stream replays from (seed, rank, W, k): a resumed consumer starts at its saved k.
* **Objects are larger than training batches.** Each Ray object (one actor call) holds m = object_size / B
  consecutive training batches of one rank (k .. k + m - 1), rendered in one call and sliced zero-copy by the
  consumer: the per-object fixed costs (task, object, transfer) are paid once per m batches. Which samples
  training batch k holds does not depend on m, so `object_size` is a performance knob only: resuming, the
  shard arithmetic and the exactly-once check stay in sample units whatever it is.
* **The queue is refs only, and lives in the consumer.** A `DataStream` keeps a deque of at most `capacity`
  ObjectRefs of objects it has asked for (capacity = min(max_batches_in_flight, max_bytes_in_flight // object
  bytes)). It asks actor o % A for its object o; the actor's return value goes to the object store on the actor's
  node, and the pixels move once, store to consumer, when the consumer `ray.get`s its head ref. No queue
  actor ever holds pixels (`ray.util.queue.Queue` would copy every batch through one actor; see the
  benchmark). When the deque is full the consumer asks for nothing more, so producers idle: backpressure.
  After a batch is handed out its ref is dropped, so the store frees it once the consumer's tensors go.
* **Memory.** In flight per consumer <= capacity * object bytes (+ the object in use), by default a few tens of
  MB against a 512 MiB store: far below Ray's spill threshold. `object_store_stats()["spilled_bytes"]`
  (cluster/local.py) or `ray memory --stats-only` on a cluster shows it stays 0.
* **Faults.** Actors restart (`max_restarts`) and Ray retries their pending calls (`max_task_retries`); a
  batch's content depends only on (seed, g), so a re-rendered batch is byte-identical and every index still
  arrives exactly once. An error raised by rendering or by an actor's constructor is not retried: the
  consumer raises `StreamError` with it at once.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import ray

from synthstream.batch import TorchBatch, check_version, to_record_batch, to_torch
from synthstream.errors import RunFailed, UserError
from synthstream.limits import MAX_BATCH, MAX_SAMPLES, MAX_SEED
from synthstream.style import Style
from synthstream.trace import traces_at

MiB = 1 << 20
OBJECT_TARGET_BYTES = 8 * MiB  # default object size: the smallest multiple of batch_size reaching this
ACTOR_RESOURCE_SHARE = 0.001  # of `actor_resource` per actor: it pins placement, CPUs bound the count
MAX_OBJECT = min(MAX_SAMPLES, 1 << 20)  # samples per object at most
METRICS_INTERVAL_S = 1.0     # consumer metrics go to Ray at most this often (each call costs tens of us)


class StreamError(RunFailed):
    """The stream cannot deliver: a generator actor failed for good, or rendering raised."""


@dataclass(kw_only=True)
class StreamConfig:
    """A stream's settings. Errors name these fields; the CLI maps them to its flags."""

    style: Style
    seed: int = 0
    batch_size: int = 256
    num_actors: int = 2
    actor_cpus: float = 1.0
    """CPUs Ray reserves for each generator actor; Numba gets max(1, floor(actor_cpus)) threads."""
    object_size: int | None = None
    """Samples per Ray object (one actor call), a multiple of batch_size; the consumer slices objects into
    training batches without copying. None: the smallest multiple reaching OBJECT_TARGET_BYTES (8 MiB),
    within max_bytes_in_flight / 2. Larger objects amortise per-object costs; smaller ones start sooner."""
    max_batches_in_flight: int = 8
    """Objects (of object_size samples) a consumer keeps requested ahead."""
    max_bytes_in_flight: int = 256 * MiB
    max_restarts: int = 3
    actor_resource: str | None = None
    """A custom resource every generator actor also requires (a sliver of one unit), to pin generators to the
    nodes that advertise it (e.g. a CPU worker group started with `--resources='{"synthstream_generator": 1}'`)."""
    resource_wait_s: float = 0.0
    """How long to wait for an autoscaling cluster to grow before refusing (0: refuse at once)."""
    ready_timeout_s: float = 120.0
    """How long to wait for the actors to be placed and warmed before saying what is missing."""

    def __post_init__(self) -> None:
        if not isinstance(self.style, Style):
            raise TypeError(f"style must be a synthstream.style.Style (load_style(...)), not {type(self.style)}")
        checks = [
            (_integer(self.batch_size) and 1 <= self.batch_size <= MAX_BATCH,
             f"batch_size = {self.batch_size!r} must be an integer in [1, {MAX_BATCH}]"),
            (_integer(self.num_actors) and 1 <= self.num_actors <= 4096,
             f"num_actors = {self.num_actors!r} must be an integer in [1, 4096]"),
            (_number(self.actor_cpus) and 0 < self.actor_cpus <= 256,
             f"actor_cpus = {self.actor_cpus!r} must be in (0, 256]"),
            (_integer(self.max_batches_in_flight) and 1 <= self.max_batches_in_flight <= 1024,
             f"max_batches_in_flight = {self.max_batches_in_flight!r} must be an integer in [1, 1024]"),
            (_integer(self.max_bytes_in_flight) and self.max_bytes_in_flight >= 1 * MiB,
             f"max_bytes_in_flight = {self.max_bytes_in_flight!r} must be at least 1 MiB"),
            (self.object_size is None or (_integer(self.object_size) and self.object_size >= 1
                                          and _integer(self.batch_size) and self.batch_size >= 1
                                          and self.object_size % self.batch_size == 0
                                          and self.object_size <= MAX_OBJECT),
             f"object_size = {self.object_size!r} must be a multiple of batch_size ({self.batch_size!r}) "
             f"in [batch_size, {MAX_OBJECT}], or unset to choose it by bytes"),
            (_integer(self.seed) and 0 <= self.seed < MAX_SEED,
             f"seed = {self.seed!r} must be in [0, 2**63)"),
            (self.actor_resource is None or (isinstance(self.actor_resource, str) and self.actor_resource.strip()
                                             and self.actor_resource not in ("CPU", "GPU", "memory")),
             f"actor_resource = {self.actor_resource!r} must name a custom resource"),
            (_number(self.resource_wait_s) and 0 <= self.resource_wait_s <= 86400,
             f"resource_wait_s = {self.resource_wait_s!r} must be in [0, 86400]"),
            (_integer(self.max_restarts) and -1 <= self.max_restarts <= 1000,
             f"max_restarts = {self.max_restarts!r} must be an integer in [0, 1000], or -1 for no limit"),
            (_number(self.ready_timeout_s) and 0 < self.ready_timeout_s <= 86400,
             f"ready_timeout_s = {self.ready_timeout_s!r} must be in (0, 86400] seconds"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)

    def sample_bytes(self) -> int:
        """Bytes of one sample in the object store (pixels + ~8 bytes per latent and column)."""
        from synthstream.trace import codec_of

        s = self.style
        return s.height * s.width + 8 * (codec_of(s).steps + 4)

    def batch_bytes(self) -> int:
        """Bytes of one training batch in the object store."""
        return self.batch_size * self.sample_bytes() + 16384

    def batches_per_object(self) -> int:
        """m: training batches per Ray object (object_size / batch_size, or chosen by bytes)."""
        if self.object_size is not None:
            return self.object_size // self.batch_size
        per_batch = self.batch_size * self.sample_bytes()
        wanted = -(-OBJECT_TARGET_BYTES // per_batch)                       # ceil
        room = (self.max_bytes_in_flight // 2 - 16384) // per_batch          # keep >= 2 objects in the byte cap
        return max(1, min(wanted, room, MAX_OBJECT // self.batch_size))

    def object_bytes(self) -> int:
        """Bytes of one Ray object in the store."""
        return self.batches_per_object() * self.batch_size * self.sample_bytes() + 16384

    def capacity(self) -> int:
        """Object refs a consumer keeps in flight: the object cap, lowered to honour the byte cap."""
        by_bytes = self.max_bytes_in_flight // self.object_bytes()
        if by_bytes < 1:
            what = "one batch" if self.batches_per_object() == 1 else f"one object ({self.object_size} samples)"
            raise UserError(f"{what} ({self.object_bytes() / MiB:.1f} MiB) exceeds max_bytes_in_flight "
                            f"({self.max_bytes_in_flight / MiB:.1f} MiB); lower batch_size or object_size, or "
                            f"raise the cap")
        return max(1, min(self.max_batches_in_flight, by_bytes))

    def actor_bundle(self) -> dict[str, float]:
        """What one generator actor reserves."""
        bundle = {"CPU": float(self.actor_cpus)}
        if self.actor_resource:
            bundle[self.actor_resource] = ACTOR_RESOURCE_SHARE
        return bundle


def _integer(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v) -> bool:
    """A finite int or float (not a bool): NaN compares false with every bound, so it is refused here too."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class GeneratorActor:
    """Renders whole batches for a stream. Thin: it holds the style and calls `generate`."""

    def __init__(self, style: Style, seed: int, batch_size: int, threads: int) -> None:
        from ray.util import metrics

        from synthstream.generate import generate, render
        from synthstream.render.jit import set_threads

        self.threads = set_threads(threads)       # Numba would otherwise start one thread per host core
        self.style = style
        self.seed, self.batch_size = seed, batch_size
        self._render = render
        generate(self.style, seed, 0, 2)          # pay JIT/cache load and the glyph atlas now, not in batch 1
        self.images, self.busy_s, self.started = 0, 0.0, time.time()
        self._rendered = metrics.Counter("synthstream_images_rendered", "images rendered by generator actors",
                                         tag_keys=("actor",))
        self._rate = metrics.Gauge("synthstream_actor_images_per_s", "generator actor images/s while busy",
                                   tag_keys=("actor",))
        self._tags = {"actor": ray.get_runtime_context().get_actor_id()[:12]}

    def ready(self) -> dict:
        ctx = ray.get_runtime_context()
        return {"node_id": ctx.get_node_id(), "node_ip": ray.util.get_node_ip_address(),
                "actor_id": ctx.get_actor_id(), "threads": self.threads}

    def render(self, first_batch: int, count: int = 1, stride: int = 1) -> pa.RecordBatch:
        """One object: global batches first_batch + i * stride (i < count), in that order, in one call."""
        t0 = time.perf_counter()
        starts = (first_batch + stride * np.arange(count, dtype=np.int64)) * self.batch_size
        indices = (starts[:, None] + np.arange(self.batch_size, dtype=np.int64)).ravel()
        traces = traces_at(self.style, self.seed, indices)
        batch = to_record_batch(self.style, self._render(self.style, traces), traces, self.seed)
        self.busy_s += time.perf_counter() - t0
        self.images += len(indices)
        self._rendered.inc(len(indices), tags=self._tags)
        self._rate.set(self.images / max(self.busy_s, 1e-9), tags=self._tags)
        return batch

    def stats(self) -> dict:
        return {"images": self.images, "busy_s": self.busy_s,
                "images_per_s_busy": self.images / max(self.busy_s, 1e-9),
                "images_per_s_wall": self.images / max(time.time() - self.started, 1e-9)}


class GeneratorPool:
    """Starts `num_actors` generator actors and hands out per-rank `DataStream`s over them.

    Args:
        config: the stream's settings (validated on construction).

    Raises:
        UserError: the cluster can never fit the actors, or they were not placed within `ready_timeout_s`.
        StreamError: an actor failed while starting (e.g. a font missing on its node).

    Examples:
        >>> pool = GeneratorPool(StreamConfig(style="tiny", num_actors=2))  # doctest: +SKIP
        >>> for batch in pool.stream(rank=0, world_size=1): ...            # doctest: +SKIP
    """

    def __init__(self, config: StreamConfig) -> None:
        from synthstream.capacity import ensure_resources

        self.config = config
        self.style = config.style
        config.capacity()                                 # byte cap vs batch size, before starting anything
        self.actors: list = []
        self.asked_autoscaler = ensure_resources([config.actor_bundle()] * config.num_actors,
                                                 wait_s=config.resource_wait_s,
                                                 what=f"{config.num_actors} generator actors (num_actors)")
        need, total = config.num_actors * config.actor_cpus, ray.cluster_resources().get("CPU", 0.0)
        resources = {k: v for k, v in config.actor_bundle().items() if k != "CPU"}
        actor_class = ray.remote(GeneratorActor).options(
            num_cpus=config.actor_cpus, resources=resources or None, max_restarts=config.max_restarts,
            max_task_retries=config.max_restarts)
        threads = max(1, int(config.actor_cpus))
        self.actors = [actor_class.remote(self.style, config.seed, config.batch_size, threads)
                       for _ in range(config.num_actors)]
        self.actor_info = self._wait_ready(need, total)

    def _wait_ready(self, need: float, total: float) -> list[dict]:
        refs = [a.ready.remote() for a in self.actors]
        done, pending = ray.wait(refs, num_returns=len(refs), timeout=self.config.ready_timeout_s)
        if pending:
            free = ray.available_resources().get("CPU", 0.0)
            self.shutdown()
            raise UserError(f"only {len(done)} of {len(refs)} generator actors started within "
                            f"{self.config.ready_timeout_s:g} s: they need {need:g} CPUs and {free:g} of the "
                            f"cluster's {total:g} are free")
        try:
            return ray.get(refs)
        except ray.exceptions.RayError as e:
            self.shutdown()
            raise StreamError(f"a generator actor failed to start: {_cause(e)}") from None

    def stream(self, *, rank: int = 0, world_size: int = 1, start: int = 0) -> DataStream:
        return DataStream(self.config, self.actors, rank=rank, world_size=world_size, start=start)

    def stats(self) -> list[dict]:
        return ray.get([a.stats.remote() for a in self.actors])

    def node_ips(self) -> list[str]:
        """Where each generator actor runs now (after restarts too)."""
        return [info["node_ip"] for info in ray.get([a.ready.remote() for a in self.actors])]

    def shutdown(self) -> None:
        for a in self.actors:
            ray.kill(a, no_restart=True)
        self.actors = []
        if self.asked_autoscaler:
            from synthstream.capacity import release_request
            release_request()
            self.asked_autoscaler = False


class DataStream:
    """One consumer's shard of the stream: `for batch in stream` yields `TorchBatch`es in batch order.

    Picklable before iteration starts (config + actor handles), so it can be built by the driver and used
    inside a Ray Train worker. `position` is the next training batch number k; pass it back as `start` to
    resume (objects are re-cut from there, so any `object_size` resumes any other).

    Raises:
        StreamError: from iteration, when a batch cannot be produced.
    """

    def __init__(self, config: StreamConfig, actors: list, *, rank: int = 0, world_size: int = 1,
                 start: int = 0) -> None:
        if not 0 <= rank < world_size:
            raise UserError(f"rank {rank} must be in [0, {world_size})")
        if not actors:
            raise UserError("a stream needs at least one generator actor")
        self.config, self.actors = config, list(actors)
        self.rank, self.world_size, self.position, self._start = rank, world_size, start, start
        self.style = config.style
        self.capacity = config.capacity()
        self.per_object = config.batches_per_object()
        self.batch_bytes = config.batch_bytes()
        self.object_bytes = config.object_bytes()
        self.index_errors = 0                      # batches whose sample indices were not the expected range
        self._in_flight: collections.deque = collections.deque()   # (first k, ObjectRef)
        self._next_to_submit = start
        self._object: pa.RecordBatch | None = None  # the object being sliced, and its first batch number
        self._object_first = start
        self.wait_s, self.cpu_s, self.delivered, self._t0 = 0.0, 0.0, 0, None
        self.first_batch_s: float | None = None    # from the first request to the first batch in hand
        self._metrics, self._last_export = None, 0.0

    def __getstate__(self) -> dict:
        assert not self._in_flight and self._object is None, "hand a DataStream to another process before iterating it"
        state = self.__dict__.copy()
        state["_metrics"] = None
        return state

    def global_batch(self, k: int) -> int:
        return k * self.world_size + self.rank

    def _top_up(self) -> None:
        while len(self._in_flight) < self.capacity:
            k, m = self._next_to_submit, self.per_object
            o = (k // m) * self.world_size + self.rank             # this object's number across all ranks
            ref = self.actors[o % len(self.actors)].render.remote(self.global_batch(k), m, self.world_size)
            self._in_flight.append((k, ref))
            self._next_to_submit += m

    def _next_object(self) -> None:
        self._top_up()
        k, ref = self._in_flight.popleft()
        t0 = time.perf_counter()
        try:
            obj = ray.get(ref)
        except ray.exceptions.RayError as e:
            raise StreamError(f"batch {self.global_batch(k)} failed: {_cause(e)}") from None
        finally:
            self.wait_s += time.perf_counter() - t0
        del ref                                    # the consumer's last reference: the store frees it with obj
        if k == self._start:
            check_version(obj)                     # once per stream: producers and consumer must agree
        self._object, self._object_first = obj, k
        self._top_up()                             # refill before the caller starts its step

    def next_record_batch(self) -> pa.RecordBatch:
        """The next Arrow batch of this shard (blocks while it renders); a zero-copy slice of an object."""
        cpu0 = time.thread_time()
        if self._t0 is None:
            self._t0 = time.perf_counter()
        if self._object is None or self.position - self._object_first >= self.per_object:
            self._object = None                    # drop the used object before waiting on the next
            self._next_object()
        B = self.config.batch_size
        batch = self._object.slice((self.position - self._object_first) * B, B)
        self._account(batch)
        self.position += 1
        self.delivered += batch.num_rows
        t1 = time.perf_counter()
        if self.first_batch_s is None:
            self.first_batch_s = t1 - self._t0
        if t1 - self._last_export >= METRICS_INTERVAL_S:
            self._export_metrics()
            self._last_export = t1
        self.cpu_s += time.thread_time() - cpu0
        return batch

    def _account(self, batch: pa.RecordBatch) -> None:
        """Exactly-once bookkeeping in sample units: training batch k of this rank must hold indices
        [g B, (g + 1) B), g = its global batch, whatever object it came in."""
        index = batch.column("index")
        first = self.global_batch(self.position) * self.config.batch_size
        if (batch.num_rows != self.config.batch_size or index[0].as_py() != first
                or index[batch.num_rows - 1].as_py() != first + batch.num_rows - 1):
            self.index_errors += 1

    def __iter__(self) -> Iterator[TorchBatch]:
        while True:
            batch = self.next_record_batch()
            cpu0 = time.thread_time()
            out = to_torch(self.style, batch)
            self.cpu_s += time.thread_time() - cpu0
            yield out

    def _export_metrics(self) -> None:
        if self._metrics is None:
            from ray.util import metrics
            tags = ("rank",)
            self._metrics = (metrics.Gauge("synthstream_queue_depth", "batches in flight", tag_keys=tags),
                             metrics.Gauge("synthstream_bytes_in_flight", "bytes in flight", tag_keys=tags),
                             metrics.Gauge("synthstream_consumer_wait_s", "total consumer wait", tag_keys=tags),
                             metrics.Counter("synthstream_images_delivered", "images delivered", tag_keys=tags))
            self._last_delivered = 0
        depth, in_flight, wait, delivered = self._metrics
        tags = {"rank": str(self.rank)}
        depth.set(len(self._in_flight), tags=tags)
        in_flight.set(len(self._in_flight) * self.object_bytes, tags=tags)
        wait.set(self.wait_s, tags=tags)
        delivered.inc(self.delivered - self._last_delivered, tags=tags)
        self._last_delivered = self.delivered

    def stats(self, actors: bool = True) -> dict:
        """This consumer's figures, plus each actor's (a round trip to every actor) unless `actors` is False."""
        elapsed = time.perf_counter() - self._t0 if self._t0 else 0.0
        out = {"rank": self.rank, "position": self.position, "images_delivered": self.delivered,
               "index_errors": self.index_errors,
               "delivered_images_per_s": self.delivered / elapsed if elapsed else 0.0,
               "consumer_wait_s": self.wait_s, "wait_share": self.wait_s / elapsed if elapsed else 0.0,
               "consumer_cpu_ms_per_batch": 1e3 * self.cpu_s / max(self.position - self._start, 1),
               "time_to_first_batch_s": self.first_batch_s,
               "queue_depth": len(self._in_flight), "capacity": self.capacity,
               "object_size": self.per_object * self.config.batch_size,
               "bytes_in_flight": len(self._in_flight) * self.object_bytes}
        if actors:
            out["actors"] = ray.get([a.stats.remote() for a in self.actors])
        return out

    def close(self, drain_timeout_s: float = 10.0) -> None:
        """Let the batches in flight finish (so no actor is killed mid-call), then drop their refs."""
        if self._in_flight:
            refs = [ref for _, ref in self._in_flight]
            ray.wait(refs, num_returns=len(refs), timeout=drain_timeout_s)
        self._in_flight.clear()
        self._object = None


def _cause(e: BaseException) -> str:
    """The innermost message of a Ray error, on one line."""
    cause = getattr(e, "cause", None) or e
    text = str(cause).strip().splitlines()
    last = [ln for ln in text if ln.strip()][-1] if text else type(cause).__name__
    return last.strip()


def sample_indices(batches: list[pa.RecordBatch]) -> np.ndarray:
    """All global sample indices in some batches (for checks and tests)."""
    return np.concatenate([b.column("index").to_numpy() for b in batches]) if batches else np.empty(0, np.int64)
