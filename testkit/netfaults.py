"""Network faults between a service and what it talks to, without touching either side.

`TcpProxy.freeze()` stops every byte in both directions while keeping the connections open: a
dead network path, which only timeouts and heartbeats can notice. `WebsocketRelay.quiet()` is
the subtler fault: the websocket stays healthy (pings are answered) but no data comes, as when
an exchange's stream stalls; only a timeout on *data* notices that.
"""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
from aiohttp import web


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `upstream_host`:`upstream_port`; `port=0` picks a free one."""

    def __init__(self, upstream_host: str, upstream_port: int, *, port: int = 0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = port
        self.connections = 0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def freeze(self) -> None:
        """Hold every byte from now on (new connections are accepted, then held too)."""
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    def cut(self) -> int:
        """Abort every connection (a reset, no goodbye); returns how many were open."""
        writers = list(self._writers)
        for writer in writers:
            transport = writer.transport
            if transport is not None:
                transport.abort()
        self._writers.clear()
        return len(writers) // 2

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.close()
            return
        self._writers |= {client_writer, upstream_writer}
        pumps = [
            asyncio.create_task(self._pump(client_reader, upstream_writer)),
            asyncio.create_task(self._pump(upstream_reader, client_writer)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
                self._tasks.discard(task)
            for writer in (client_writer, upstream_writer):
                self._writers.discard(writer)
                writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()


class WebsocketRelay:
    """A websocket hop to `upstream` (ws://host:port): same paths, same query, text relayed.

    `quiet()` drops what the upstream sends (the client's pings are still answered, by this
    relay), so the connection looks alive and says nothing; `speak()` resumes relaying.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = 0
        self.connections = 0
        self.dropped = 0
        self._quiet = False
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def quiet(self) -> None:
        self._quiet = True

    def speak(self) -> None:
        self._quiet = False

    async def start(self) -> WebsocketRelay:
        app = web.Application()
        app.router.add_get("/{path:.*}", self._relay)
        self._session = aiohttp.ClientSession()
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _relay(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        self.connections += 1
        client = web.WebSocketResponse(autoping=True)
        await client.prepare(request)
        try:
            async with self._session.ws_connect(self.upstream + request.path_qs, autoping=True) as upstream:
                downward = asyncio.create_task(self._down(upstream, client))
                try:
                    async for msg in client:
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            await upstream.send_str(msg.data)
                finally:
                    downward.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await downward
        except aiohttp.ClientError:
            pass
        finally:
            await client.close()
        return client

    async def _down(self, upstream: aiohttp.ClientWebSocketResponse, client: web.WebSocketResponse) -> None:
        async for msg in upstream:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            if self._quiet:
                self.dropped += 1
                continue
            await client.send_str(msg.data)
        await client.close()
