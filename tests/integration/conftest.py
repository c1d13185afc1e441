import pytest
import ray

from cluster.local import connect


@pytest.fixture(scope="session")
def local_ray():
    """A real local Ray with 2 CPUs for the whole integration session."""
    connect(num_cpus=2)
    yield
    ray.shutdown()
