"""Runs docs/integrations.md's FastAPI app on uvicorn with a ticker task
measuring the event loop's lag, for tests/test_integration_asyncio.py.

``python _uvicorn_app.py MODE DIRECTORY STALL_SECONDS``; MODE is ``queued``
(the documented configuration) or ``blocking`` (the same with
``queue_size: 0``). Every archive opened stalls STALL_SECONDS in a
callback, standing in for a slow disk, and archives roll about every 100
KiB. Prints the port once serving. ``GET /phase/on`` and ``/phase/off``
switch the app's loggers on and off and measure the lag from then on under
that phase's name, so that phases with and without logging can alternate
in one process, on the same machine load; ``GET /lag`` returns the lags
(seconds) seen per phase. The snippet runs whole, as its own ``__main__``
block, with ``uvicorn.run`` standing in; it stops on SIGTERM as the
snippet's handler makes it (status 143).
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from pathlib import Path
from typing import Any

import uvicorn

from shoebox.callbacks import ArchiveCallback

PAGE = Path(__file__).resolve().parent.parent / "docs" / "integrations.md"
TICK = 0.005


class SlowDisk(ArchiveCallback):
    """Every new archive takes ``seconds`` more to open, as creating a file
    on a slow disk does. (Not a slow finish: since issue 19 archives are
    finished on the roll manager's finisher thread, where a stall no
    longer reaches the thread that writes; opening the next one is still
    that thread's work.)"""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def on_open(self, filename: str) -> None:
        time.sleep(self.seconds)


def snippet(directory: str) -> str:
    (code,) = [block for block in re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)
               if "uvicorn.run" in block]
    return code.replace("/var/lib/shop/archive", directory)


def main() -> None:
    mode, directory, stall = sys.argv[1], sys.argv[2], float(sys.argv[3])
    lags: dict[str, list[float]] = {"on": [], "off": []}
    phase: list[str] = []  # the phase being measured, once one started

    def run(app: Any, *, log_config: dict[str, Any], **_where: Any) -> None:
        """Stands in for uvicorn.run, which the snippet calls: the same app
        and logging, on a free port, with the ticker and the slow disk."""
        archive = log_config["handlers"]["archive"]
        archive.update(roll_size_mb=0.1, callbacks=[SlowDisk(stall)])
        if mode == "blocking":
            archive["queue_size"] = 0

        @app.get("/phase/{name}")
        async def switch(name: str) -> dict[str, str]:
            for logger in log_config["loggers"]:
                logging.getLogger(logger).disabled = name == "off"
            phase[:] = [name]
            return {"phase": name}

        @app.get("/lag")
        async def lag() -> dict[str, list[float]]:
            phase.clear()
            return lags

        asyncio.run(serve(uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                                        log_config=log_config))))

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(TICK)
            if phase:
                lags[phase[0]].append(loop.time() - before - TICK)

    async def serve(server: uvicorn.Server) -> None:
        ticking = asyncio.create_task(ticker())
        serving = asyncio.create_task(server.serve())
        while not server.started:
            if serving.done():
                serving.result()  # raises why it could not start
                return
            await asyncio.sleep(0.01)
        print(server.servers[0].sockets[0].getsockname()[1], flush=True)
        await serving
        ticking.cancel()

    uvicorn.run = run  # type: ignore[assignment]
    exec(compile(snippet(directory), str(PAGE), "exec"), {"__name__": "__main__"})


if __name__ == "__main__":
    main()
