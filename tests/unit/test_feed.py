"""The device feed: a no-op on the CPU (same tensors, same order); on CUDA, one batch ahead, same values."""

import pyarrow as pa
import pytest
import torch

from synthstream.batch import TorchBatch
from trainer.feed import DeviceFeed


def batches(n, b=4):
    for k in range(n):
        images = torch.full((b, 3, 5), k, dtype=torch.uint8)
        targets = torch.arange(b * 2, dtype=torch.int64).reshape(b, 2) + k
        yield TorchBatch(images=images, targets=targets, index=torch.arange(k * b, (k + 1) * b),
                         record_batch=pa.record_batch({"k": [k] * b}))


def test_cpu_feed_hands_back_the_batches_own_tensors_in_order():
    source = list(batches(3))
    feed = DeviceFeed(iter(source), "cpu")
    got = list(feed)
    assert len(got) == 3 and feed.batches_served == 3 and feed.wait_s >= 0.0
    for (images, targets), batch in zip(got, source):
        assert images is batch.images and targets is batch.targets        # no copy, no staging
    assert feed._side is None and all(p is None for p in feed._pinned)


def test_depth_below_two_is_refused():
    with pytest.raises(ValueError, match="depth = 1"):
        DeviceFeed(batches(1), "cpu", depth=1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_feed_delivers_the_same_values_one_batch_ahead():
    source = list(batches(5))
    feed = DeviceFeed(iter(source), "cuda")
    for k in range(5):                                    # batch k + 1 is copied while k is served
        images, targets = next(feed)
        assert images.is_cuda and images.dtype == torch.uint8
        torch.testing.assert_close(images.cpu(), source[k].images)
        torch.testing.assert_close(targets.cpu(), source[k].targets)
    with pytest.raises(StopIteration):
        next(feed)
