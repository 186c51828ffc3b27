"""jupyter_client side of fork kernels: a kernel provisioner that asks the fork server for the kernel.

:class:`ForkProvisioner` is jupyter_client's :class:`LocalProvisioner` (connection file, ports, kernel
command and environment are prepared exactly as for an ordinary kernel) except that ``launch_kernel``
asks this process's fork server (:mod:`convcourse.grading.forkserver`) to fork the kernel; the
resulting :class:`~convcourse.grading.forkserver.ForkedKernel` stands in for the ``Popen`` object, so
polling, interrupting (SIGINT to the kernel's process group), terminating, killing and waiting work
as upstream and nbclient's timeouts, interrupts and dead-kernel detection are unchanged. A command the
server cannot run (another kernel, another interpreter) or a server that fails starts an ordinary
kernel instead.

:class:`ForkKernelManager` uses this provisioner without entry points or kernel-spec changes; the
grading preprocessor (:class:`~convcourse.grading.execute.GuardedExecute`) picks it only in a process
that started a fork server (the parallel grading workers), so plain ``nbgrader autograde`` and the
learners' self-check keep ordinary kernels.
"""

from __future__ import annotations

import pathlib
import signal
import uuid
from typing import Any

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning import LocalProvisioner

from . import forkserver, sandbox


class ForkProvisioner(LocalProvisioner):
    """LocalProvisioner whose kernel process is forked by the fork server, or started as an ordinary
    process; in both cases inside the notebook's sandbox when it has one (:mod:`.sandbox`)."""

    forked = False
    sandboxed = False

    async def send_signal(self, signum: int) -> None:
        """As upstream, except for an interrupt of an ordinary sandboxed kernel: SIGINT to the process group
        would stop bubblewrap's outer process (and so the sandbox), so it goes to the processes inside."""
        if self.sandboxed and signum == signal.SIGINT and self.process is not None:
            import psutil

            try:
                inside = psutil.Process(self.process.pid).children(recursive=True)
            except psutil.Error:
                inside = []
            for process in inside:
                try:
                    if process.name() != "bwrap":
                        process.send_signal(signum)
                except psutil.Error:
                    pass
            return
        await super().send_signal(signum)

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        placement = getattr(self.parent, "placement", None)
        box = getattr(placement, "sandbox", None)
        env = dict(kwargs.get("env") or {})
        server = forkserver.active()
        args = server.kernel_args(cmd) if server is not None else None
        if server is not None and args is None:
            server.log(f"fork server: cannot fork {cmd[:4]}; starting an ordinary kernel")
        if server is not None and args is not None:
            try:
                if server.sandbox is not None:  # the server and its kernels share one sandbox
                    fork_env, cwd = server.sandbox.environment(env), sandbox.WORK
                else:
                    fork_env, cwd = sandbox.kernel_environment(env, sandboxed=False), kwargs.get("cwd")
                self.process = server.spawn(args, env=fork_env, cwd=cwd)
            except forkserver.ForkServerError as error:
                server.log(f"fork server: {error}; starting an ordinary kernel")
            else:
                self.forked = True
                self.pid = self.process.pid
                # the child called setsid() before the server answered; a sandboxed server's pids are those
                # of its own pid namespace, so signals then go through the pidfd only
                self.pgid = None if server.sandbox is not None else self.process.pid
                self.cwd = kwargs.get("cwd", pathlib.Path.cwd())
                return self.connection_info
        if box is not None:
            env = box.environment(env)
            # ipykernel's parent poller would see bwrap's init (pid 1) as its parent and exit; bwrap's
            # --die-with-parent ends the sandbox with the worker instead
            cmd = box.command(cmd, setenv={"JPY_PARENT_PID": "0"})
            self.sandboxed = True
        else:
            env = sandbox.kernel_environment(env, sandboxed=False)
        kwargs["env"] = env
        return await super().launch_kernel(cmd, **kwargs)

    async def cleanup(self, restart: bool = False) -> None:
        process = self.process
        if isinstance(process, forkserver.ForkedKernel) and process.poll() is not None:
            process.close()
        await super().cleanup(restart=restart)


class ForkKernelManager(AsyncKernelManager):
    """AsyncKernelManager whose kernels come from this process's fork server (when it has one)."""

    async def _async_pre_start_kernel(self, **kw: Any) -> tuple[list[str], dict[str, Any]]:
        if self.provisioner is None:
            self.kernel_id = self.kernel_id or kw.pop("kernel_id", str(uuid.uuid4()))
            self.provisioner = ForkProvisioner(kernel_id=self.kernel_id, kernel_spec=self.kernel_spec, parent=self)
        return await super()._async_pre_start_kernel(**kw)
