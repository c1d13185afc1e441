"""The device feed: training batches from the stream to the device the step runs on.

On a GPU (what DALI or Ray Data's `pin_memory` give users): each batch's uint8 pixels and int64 targets are
copied into one of `depth` reusable pinned host buffers, and from there to the device on a side CUDA stream,
so batch k + 1 crosses PCIe while batch k trains. Pixels travel as uint8 (a quarter of float32's bytes); the
model normalises them on the device (`ProposalNet.embed`). The training stream waits for the copy's event
before using a batch, and the device tensors are marked as used by it, so the caching allocator never hands
their memory out early.

On the CPU the same calls are a no-op: the batch's own tensors come back, no copy, no thread.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import torch

from synthstream.batch import TorchBatch


class DeviceFeed:
    """`next(feed)` -> (images uint8 [B, H, W], targets int64 [B, T]) on `device`, one batch ahead on CUDA.

    `wait_s` is the time spent in `next` (data wait as a training loop sees it), `batches` the count served.
    """

    def __init__(self, batches: Iterator[TorchBatch], device: torch.device | str, *, depth: int = 2) -> None:
        self.batches = iter(batches)
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        if depth < 2:
            raise ValueError(f"depth = {depth} must be >= 2 (one batch in use, one being copied)")
        self.depth = depth
        self.wait_s, self.batches_served = 0.0, 0
        self._pinned: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * depth
        self._copied: list[torch.cuda.Event | None] = [None] * depth
        self._slot = 0
        self._ahead = None                 # (images, targets, event) of the batch being copied
        self._exhausted = False
        self._side = torch.cuda.Stream(self.device) if self.cuda else None

    def __iter__(self) -> DeviceFeed:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        t0 = time.perf_counter()
        if not self.cuda:
            batch = next(self.batches)
            self.wait_s += time.perf_counter() - t0
            self.batches_served += 1
            return batch.images, batch.targets
        if self._ahead is None:
            if self._exhausted:
                raise StopIteration
            self._ahead = self._start_copy(next(self.batches))
        images, targets, copied = self._ahead
        try:
            self._ahead = self._start_copy(next(self.batches))   # the next batch crosses while this one trains
        except StopIteration:                                     # a finite source: serve what is in flight
            self._ahead, self._exhausted = None, True
        current = torch.cuda.current_stream(self.device)
        current.wait_event(copied)
        images.record_stream(current)
        targets.record_stream(current)
        self.wait_s += time.perf_counter() - t0
        self.batches_served += 1
        return images, targets

    def _start_copy(self, batch: TorchBatch):
        slot = self._slot
        self._slot = (slot + 1) % self.depth
        if self._copied[slot] is not None:
            self._copied[slot].synchronize()                      # this buffer's previous copy has landed
        pinned = self._pinned[slot]
        if pinned is None or pinned[0].shape != batch.images.shape or pinned[1].shape != batch.targets.shape:
            pinned = (torch.empty(batch.images.shape, dtype=torch.uint8, pin_memory=True),
                      torch.empty(batch.targets.shape, dtype=torch.int64, pin_memory=True))
            self._pinned[slot] = pinned
        pinned[0].copy_(batch.images)
        pinned[1].copy_(batch.targets)
        with torch.cuda.stream(self._side):
            images = pinned[0].to(self.device, non_blocking=True)
            targets = pinned[1].to(self.device, non_blocking=True)
            event = torch.cuda.Event()
            event.record(self._side)
        self._copied[slot] = event
        return images, targets, event
