"""Serving throughput and latency: N concurrent HTTP clients against `synthstream serve` (Ray Serve, request
batching) vs a single-process loop reading the same PNGs one request at a time, in the same run.

    synthstream bench serve --checkpoint lepture --clients 8 --replicas 2 --seconds 20 [--json out.json]

Both sides decode the PNG and read it with the model's recipe; latency is per request (the loop: decode +
read; the server: the HTTP round trip on loopback). Throughput is completed requests per second. The loop runs
torch on `--threads` threads (default 1, as each replica does per CPU: on a busy machine, reading one small
image on 2 threads was measured 25-40x slower than on 1, torch's threads spin-waiting for each other).
"""

from __future__ import annotations

import io
import socket
import threading
import time
import urllib.error
import urllib.request

import numpy as np

from synthstream.bench.report import machine, print_table, write_json

EVAL_SEED = 515151
IMAGES = 64


def _pngs(reader) -> list[bytes]:
    from PIL import Image

    from synthstream.generate import render
    from synthstream.trace import sample_traces

    out = []
    for a in render(reader.style, sample_traces(reader.style, EVAL_SEED, 0, IMAGES)):
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def _figures(latencies: list[float], seconds: float, errors: int = 0) -> dict:
    ms = np.array(latencies) * 1000
    return {"requests": len(latencies), "errors": errors, "seconds": seconds,
            "throughput_rps": len(latencies) / seconds if seconds else 0.0,
            "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
            "p99_ms": float(np.percentile(ms, 99)) if len(ms) else None}


def single_process(reader, bodies: list[bytes], seconds: float) -> dict:
    """One request at a time in this process: decode, read."""
    from trainer.batch_read import image_from_bytes

    latencies, t0, i = [], time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        s = time.perf_counter()
        reader.read([image_from_bytes(bodies[i % len(bodies)])])
        latencies.append(time.perf_counter() - s)
        i += 1
    return _figures(latencies, time.perf_counter() - t0)


def http_clients(url: str, bodies: list[bytes], clients: int, seconds: float) -> dict:
    """`clients` threads, each POSTing one image after another for `seconds`."""
    latencies, errors, lock = [], [0], threading.Lock()
    start = time.perf_counter()

    def client(k: int) -> None:
        i = k
        while time.perf_counter() - start < seconds:
            req = urllib.request.Request(url, data=bodies[i % len(bodies)], method="POST",
                                         headers={"Content-Type": "image/png"})
            s = time.perf_counter()
            try:
                with urllib.request.urlopen(req, timeout=120) as r:
                    r.read()
                ok = True
            except (urllib.error.URLError, OSError):
                ok = False
            with lock:
                if ok:
                    latencies.append(time.perf_counter() - s)
                else:
                    errors[0] += 1
            i += clients

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return _figures(latencies, time.perf_counter() - start, errors[0])


def run(checkpoint: str, clients: int, replicas: int, replica_cpus: float, max_batch: int, seconds: float,
        json_path: str | None, address: str | None = None, threads: int = 1) -> dict:
    import ray
    import torch
    from ray import serve

    from trainer.reader import load_reader
    from trainer.serve import start

    reader = load_reader(checkpoint)
    bodies = _pngs(reader)
    torch.set_num_threads(threads)          # after rendering: Numba's OpenMP layer resets torch's thread count
    single_process(reader, bodies, min(2.0, seconds))                          # warm-up
    loop = single_process(reader, bodies, seconds)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        url = start(checkpoint, port=port, replicas=replicas, replica_cpus=replica_cpus, max_batch=max_batch,
                    address=address) + "/read"
        http_clients(url, bodies, clients, min(2.0, seconds))                  # warm-up
        served = http_clients(url, bodies, clients, seconds)
    finally:
        serve.shutdown()
        ray.shutdown()
    result = {"benchmark": "serve", "checkpoint": checkpoint, "recipe": reader.recipe.method, "clients": clients,
              "replicas": replicas, "replica_cpus": replica_cpus, "max_batch": max_batch, "seconds": seconds,
              "torch_threads": torch.get_num_threads(), "single_process": loop, "serve": served,
              "throughput_ratio": served["throughput_rps"] / loop["throughput_rps"] if loop["throughput_rps"] else None,
              "machine": machine()}
    rows = [["single-process loop", 1, f"{loop['throughput_rps']:.1f}", f"{loop['p50_ms']:.0f}",
             f"{loop['p99_ms']:.0f}", loop["errors"]],
            [f"serve x{replicas} (batch {max_batch})", clients, f"{served['throughput_rps']:.1f}",
             f"{served['p50_ms']:.0f}" if served["p50_ms"] is not None else "-",
             f"{served['p99_ms']:.0f}" if served["p99_ms"] is not None else "-", served["errors"]]]
    print_table(["method", "clients", "req/s", "p50 ms", "p99 ms", "errors"], rows)
    write_json(result, json_path)
    return result
