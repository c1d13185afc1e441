"""`bench stream` on a real local Ray: every baseline delivers on 2 CPUs with 2 actors (Ray Data once
delivered nothing there: its read tasks waited for CPUs the render actors held), each index exactly once."""

from synthstream.bench.stream import METHODS, run


def test_every_method_delivers_each_index_once_on_two_cpus(local_ray, tmp_path):
    result = run([2], [64], seconds=1.0, style="tiny", json_path=str(tmp_path / "stream.json"))
    by_method = {r["method"]: r for r in result["runs"]}
    assert set(by_method) == set(METHODS)
    for method, r in by_method.items():
        assert r["delivered_images_per_s"] > 0 and r["exactly_once"], (method, r)
    assert {"vs_raydata", "vs_dataloader", "vs_queue"} <= set(result["ratios"][0])
    assert (tmp_path / "stream.json").exists() and (tmp_path / "stream.png").exists()
