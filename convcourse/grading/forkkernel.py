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
import uuid
from typing import Any

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning import LocalProvisioner

from . import forkserver


class ForkProvisioner(LocalProvisioner):
    """LocalProvisioner whose kernel process is forked by the fork server."""

    forked = False

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        server = forkserver.active()
        args = server.kernel_args(cmd) if server is not None else None
        if server is None or args is None:
            if server is not None:
                server.log(f"fork server: cannot fork {cmd[:4]}; starting an ordinary kernel")
            return await super().launch_kernel(cmd, **kwargs)
        try:
            self.process = server.spawn(args, env=kwargs.get("env") or {}, cwd=kwargs.get("cwd"))
        except forkserver.ForkServerError as error:
            server.log(f"fork server: {error}; starting an ordinary kernel")
            return await super().launch_kernel(cmd, **kwargs)
        self.forked = True
        self.pid = self.pgid = self.process.pid  # the child called setsid() before the server answered
        self.cwd = kwargs.get("cwd", pathlib.Path.cwd())
        return self.connection_info

    async def cleanup(self, restart: bool = False) -> None:
        process = self.process
        if isinstance(process, forkserver.ForkedKernel) and process.poll() is not None:
            process.close()
        await super().cleanup(restart=restart)


class ForkKernelManager(AsyncKernelManager):
    """AsyncKernelManager whose kernels come from this process's fork server (when it has one)."""

    async def _async_pre_start_kernel(self, **kw: Any) -> tuple[list[str], dict[str, Any]]:
        if self.provisioner is None and forkserver.active() is not None:
            self.kernel_id = self.kernel_id or kw.pop("kernel_id", str(uuid.uuid4()))
            self.provisioner = ForkProvisioner(kernel_id=self.kernel_id, kernel_spec=self.kernel_spec, parent=self)
        return await super()._async_pre_start_kernel(**kw)

