"""A real Dask cluster on 127.0.0.1 (``dask scheduler`` and ``dask worker`` processes) for tests and benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _dask(*args: str) -> list[str]:
    """The ``dask`` command of this environment (run as its module, so no PATH is needed)."""
    return [sys.executable, "-m", "dask", *args]


class LocalDaskCluster:
    """``dask scheduler`` and ``dask worker`` processes on 127.0.0.1, each in its own session; their
    output goes to ``logs``. ``stop`` (or :meth:`kill_worker`) kills every process they started."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        logs.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.scheduler = self._start(
            "scheduler", ["scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard"]
        )
        self.workers: dict[str, subprocess.Popen] = {}

    def _start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")
        return subprocess.Popen(
            _dask(*args),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.logs,
            env=env or dict(os.environ),
        )

    def add_worker(self, name: str, env: dict[str, str] | None = None) -> str:
        """Start ``dask worker`` (one process, one thread) named ``name``; returns its address once connected."""
        port = free_port()
        self.workers[name] = self._start(
            f"worker-{name}",
            [
                "worker",
                self.address,
                "--name",
                name,
                "--nworkers",
                "1",
                "--nthreads",
                "1",
                "--host",
                "127.0.0.1",
                "--worker-port",
                str(port),
                "--no-dashboard",
                "--local-directory",
                str(self.logs / f"scratch-{name}"),
            ],
            env,
        )
        return f"tcp://127.0.0.1:{port}"

    def wait_for(self, addresses: list[str], timeout: float = 120) -> None:
        """Wait until the scheduler lists every worker in ``addresses``."""
        from distributed import Client

        deadline = time.monotonic() + timeout
        while True:  # the scheduler listens before a client is made (a client that cannot connect is noisy)
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                assert self.scheduler.poll() is None and time.monotonic() < deadline, self._log("scheduler")
                time.sleep(0.2)
        with Client(self.address, timeout=timeout, set_as_default=False) as client:
            while not set(addresses) <= set(client.scheduler_info(n_workers=-1)["workers"]):
                for name, proc in self.workers.items():
                    assert proc.poll() is None, f"dask worker {name} exited: {self._log(f'worker-{name}')}"
                assert time.monotonic() < deadline, f"workers did not connect: {self._log('scheduler')}"
                time.sleep(0.2)

    def _log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]

    def kill_worker(self, name: str) -> None:
        """SIGKILL the worker and everything it started (its nanny, worker process, grading processes,
        kernels), as when its machine fails."""
        kill_tree(self.workers.pop(name))

    def stop(self) -> None:
        for proc in [*self.workers.values(), self.scheduler]:
            kill_tree(proc)
        self.workers.clear()


def kill_tree(proc: subprocess.Popen) -> None:
    """Kill ``proc`` and every process below it at once (how a test's servers shut down is not under test), and
    reap them."""
    try:
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    for member in family:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait()
    psutil.wait_procs(family, timeout=10)
