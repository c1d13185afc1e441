"""Ray Train's PyTorch process group confined to loopback, for a Ray whose every node is 127.0.0.1 (the embedded one).

Ray Train (2.60, `ray.train.torch.config._TorchBackend.on_start`) makes rank 0 host torch's rendezvous store
(`TCPStore`) on a fresh port of `ray.util.get_node_ip_address()`; but TCPStore binds the wildcard address (`::`,
dual stack: every interface, IPv4 and IPv6, no authentication) whatever master address it is given, and Gloo
listens on the address the host name resolves to. Here rank 0 opens the store's listening socket itself, on
127.0.0.1, and hands it to TCPStore (`master_listen_fd`); Gloo and NCCL are pinned to the loopback interface
(GLOO_SOCKET_IFNAME, NCCL_SOCKET_IFNAME). On a cluster the workers must reach each other, so Ray Train's own
backend is used there (`torch_config` returns None): see docs/security.md.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import timedelta

import ray
from ray.train.torch import TorchConfig
from ray.train.torch.config import _set_torch_distributed_env_vars, _TorchBackend  # private: no public hook in 2.60

LOOPBACK = "127.0.0.1"
_listener: socket.socket | None = None            # rank 0's store socket, between `_listen` and `_join`


def loopback_interface() -> str:
    """The name of the interface holding 127.0.0.1 ("lo" on Linux, "lo0" on macOS)."""
    import psutil

    for name, addrs in psutil.net_if_addrs().items():
        if any(a.family == socket.AF_INET and a.address == LOOPBACK for a in addrs):
            return name
    return "lo"


def _listen() -> int:
    """On rank 0: a listening socket on 127.0.0.1 for the store; returns its port."""
    global _listener
    _listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    _listener.bind((LOOPBACK, 0))
    _listener.listen(128)
    return _listener.getsockname()[1]


def _join(backend: str, rank: int, world_size: int, port: int, timeout_s: float) -> None:
    """On every rank: the store on 127.0.0.1 (rank 0 serves it on its socket), then the process group."""
    import torch.distributed as dist

    interface = loopback_interface()
    os.environ["GLOO_SOCKET_IFNAME"] = os.environ["NCCL_SOCKET_IFNAME"] = interface
    os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")          # as Ray Train sets it
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = LOOPBACK, str(port)
    timeout = timedelta(seconds=timeout_s)
    fd = _listener.detach() if rank == 0 else None                        # the store owns it from here
    store = dist.TCPStore(LOOPBACK, port, world_size, is_master=rank == 0, master_listen_fd=fd, timeout=timeout,
                          use_libuv=True)
    dist.init_process_group(backend, store=store, rank=rank, world_size=world_size, timeout=timeout)


class LoopbackTorchBackend(_TorchBackend):
    """Ray Train's torch backend with the store and the process group on 127.0.0.1."""

    def on_start(self, worker_group, backend_config) -> None:
        port = worker_group.execute_single(0, _listen)
        worker_group.execute(_set_torch_distributed_env_vars)
        ray.get([worker_group.execute_single_async(rank, _join, backend_config.backend, rank, len(worker_group),
                                                   port, backend_config.timeout_s)
                 for rank in range(len(worker_group))])


@dataclass
class LoopbackTorchConfig(TorchConfig):
    """A `TorchConfig` whose process group listens on 127.0.0.1 only."""

    @property
    def backend_cls(self):
        return LoopbackTorchBackend


def torch_config():
    """Ray Train's torch config for the Ray this driver is connected to: loopback-only when this node's address
    is loopback (the embedded Ray: no other host can join it), else None (Ray Train's default: the workers of a
    cluster reach each other on their node addresses)."""
    import ipaddress

    if ipaddress.ip_address(ray.util.get_node_ip_address()).is_loopback:
        return LoopbackTorchConfig()
    return None
