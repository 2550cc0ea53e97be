"""A dev host run as a subprocess by a test: started on a data folder and port, its output read
line by line as it comes, stopped or killed, restartable on the same data.

Its output is pumped by a task from the start, whether or not the test is waiting for a line: a
pipe nobody reads fills up, the host then blocks writing a log line, and on Python 3.11 a
`Process.wait()` returns only once the pipe has reached its end, so an unread pipe made a stopped
host's teardown hang until the test's timeout.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_LINE_LIMIT = 1 << 20  # a traceback or a long log line is one line


@dataclass
class HostProcess:
    data_dir: Path
    port: int
    process: asyncio.subprocess.Process | None = None
    lines: list[str] = field(default_factory=list)
    _pump: asyncio.Task[None] | None = None
    _scanned: int = 0
    _news: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    async def spawn(self, module: str, *args: str, env: dict[str, str]) -> None:
        """Start `python -m module --port P --data-dir D *args` and wait until it listens."""
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            *args,
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            limit=_LINE_LIMIT,
        )
        self._scanned = len(self.lines)
        self._pump = asyncio.create_task(self._read(self.process))
        await self.wait_for(lambda line: line.startswith("Dev host listening"), 60)

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        try:
            while raw := await process.stdout.readline():
                self.lines.append(raw.decode(errors="replace").rstrip())
                self._news.set()
        finally:
            self._news.set()

    async def wait_for(self, matches: Callable[[str], bool], timeout: float) -> str:
        """The first line from now on that `matches` (lines read before this call are not
        looked at again once a call has passed them)."""
        async with asyncio.timeout(timeout):
            while True:
                self._news.clear()
                while self._scanned < len(self.lines):
                    line = self.lines[self._scanned]
                    self._scanned += 1
                    if matches(line):
                        return line
                if self._pump is None or self._pump.done():
                    raise AssertionError("the dev host exited:\n" + "\n".join(self.lines[-30:]))
                await self._news.wait()

    async def wait(self) -> int:
        """The exit code, once the process has ended and its output has been read to the end."""
        assert self.process is not None
        code = await self.process.wait()
        if self._pump is not None:
            await self._pump
        return code

    async def kill(self) -> None:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.kill()  # SIGKILL: no shutdown, no lease released
        await self.wait()

    async def stop(self) -> None:
        if self.process is None:
            return
        if self.process.returncode is None:
            self.process.terminate()
            try:
                async with asyncio.timeout(15):
                    await self.wait()
                    return
            except TimeoutError:
                pass
        await self.kill()
