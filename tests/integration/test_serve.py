"""`synthstream serve` on a real local Ray and Ray Serve, on loopback: concurrent clients get the readings the
in-process reader gives, bad requests get one JSON error line and a 4xx while the server keeps serving, and a
replica killed under load is replaced with no failed request beyond those it held."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import ray
from PIL import Image

from synthstream.generate import render
from synthstream.trace import sample_traces
from trainer.reader import load_reader

MODEL = "lepture"
REPLICAS = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


def post(url: str, body: bytes, content_type: str = "image/png", timeout: float = 60) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture(scope="module")
def server():
    from ray import serve

    from cluster.local import connect
    from trainer.serve import start

    connect(num_cpus=2)
    try:
        url = start(MODEL, port=_free_port(), replicas=REPLICAS, replica_cpus=0.5, max_batch=8)
        yield url
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="module")
def captchas():
    reader = load_reader(MODEL)
    images = render(reader.style, sample_traces(reader.style, 99, 0, 12))
    return [png(a) for a in images], [r.text for r in reader.read(list(images))]


def test_a_missing_checkpoint_is_one_line_before_ray_starts(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "synthstream.cli", "serve", "--checkpoint", str(tmp_path / "no.pt")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(root)}, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1 and "does not exist" in proc.stderr


def test_listens_on_loopback_only_and_answers_health(server):
    assert server.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(server + "/healthz", timeout=30) as r:
        assert json.loads(r.read()) == {"status": "ok"}
    with urllib.request.urlopen(server + "/ready", timeout=30) as r:
        ready = json.loads(r.read())
    assert ready["status"] == "ready" and ready["model"] == MODEL


def test_concurrent_clients_get_correct_readings(server, captchas):
    bodies, expected = captchas
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda b: post(server + "/read", b), bodies * 2))
    assert [s for s, _ in answers] == [200] * len(answers)
    readings = [json.loads(b) for _, b in answers]
    assert [r["text"] for r in readings] == expected * 2
    assert all(0 <= r["probability"] <= 1 and r["top"] for r in readings)


def _huge_png() -> bytes:
    buf = io.BytesIO()
    Image.new("1", (20000, 20000), 1).save(buf, "PNG")           # 400 M pixels, ~90 kB on disk
    return buf.getvalue()


@pytest.mark.parametrize("body, content_type, status, words", [
    (b"this is not an image", "image/png", 400, "not a readable image"),
    (b"", "image/png", 400, "empty body"),
    (None, "image/png", 413, "image too large"),
    (b"PNG", "text/plain", 415, "content type 'text/plain'"),
], ids=["not-an-image", "zero-bytes", "20000x20000-png", "wrong-content-type"])
def test_bad_request_is_one_json_line_and_the_server_keeps_serving(server, captchas, body, content_type, status,
                                                                   words):
    status_got, answer = post(server + "/read", _huge_png() if body is None else body, content_type)
    assert status_got == status, answer
    assert len(answer.decode().splitlines()) == 1
    error = json.loads(answer)
    assert list(error) == ["error"] and words in error["error"], error
    ok, reading = post(server + "/read", captchas[0][0])
    assert ok == 200 and json.loads(reading)["text"] == captchas[1][0]


def test_a_killed_replica_is_replaced_without_failing_other_requests(server, captchas):
    from trainer.serve import replica_actors

    bodies, expected = captchas
    stop, results, lock = threading.Event(), [], threading.Lock()

    def client(k: int) -> None:
        i = k
        while not stop.is_set():
            try:
                status, answer = post(server + "/read", bodies[i % len(bodies)])
            except OSError as e:                     # no answer at all counts as a failed request
                status, answer = 0, str(e).encode()
            with lock:
                results.append((time.monotonic(), status, answer, i % len(bodies)))
            i += 1

    victims = replica_actors()
    assert len(victims) == REPLICAS
    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    time.sleep(2)
    killed_at = time.monotonic()
    ray.kill(victims[0], no_restart=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:              # the controller starts a replacement
        time.sleep(1)
        alive = replica_actors()
        if len(alive) == REPLICAS and victims[0]._actor_id not in {a._actor_id for a in alive}:
            break
    time.sleep(2)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    failed = [r for r in results if r[1] != 200]
    # only requests the killed replica held can fail: at most the 4 clients' in-flight ones, sent before the kill
    assert len(failed) <= 4, [(s, a[:200]) for _, s, a, _ in failed]
    ok = [r for r in results if r[1] == 200]
    assert all(json.loads(a)["text"] == expected[i] for _, _, a, i in ok)
    assert sum(1 for r in ok if r[0] > killed_at) > 0
    assert len(replica_actors()) == REPLICAS
