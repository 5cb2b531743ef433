"""Fixtures of the gateway's tests: the app on a seeded database, in-process or as a real server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from services.gateway.app import create_app
from shared.config import PROJECT_ROOT, Settings
from shared.messaging import topics
from testkit.infra import drop_database, new_database
from testkit.kafka import delete_topics
from testkit.ports import free_port
from tests.services.gateway.seed import Seeded, seed

ADMIN_TOKEN = "test-admin-token"


@pytest.fixture
def gateway_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"admin_token": ADMIN_TOKEN})


@pytest.fixture
async def seeded(db: asyncpg.Connection) -> Seeded:
    return await seed(db)


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan (pool, Kafka), behind an in-process HTTP client."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


@pytest.fixture
async def client(gateway_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(gateway_settings)) as http:
        yield http


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[str]:
    """A real uvicorn server in this event loop (HTTP and websockets); yields its base URL."""
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(300):
            if server.started:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError("the gateway did not start within 15 s")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def wait_kafka_connected(app_state: object, seconds: float = 30.0) -> None:
    event: asyncio.Event = app_state.kafka_connected  # type: ignore[attr-defined]
    await asyncio.wait_for(event.wait(), seconds)


def gateway_env(settings: Settings, port: int) -> dict[str, str]:
    """Environment for `candlecast gateway` as a separate process (as `candlecast up` runs it)."""
    return {
        **os.environ,
        "CANDLECAST_KAFKA_BOOTSTRAP": settings.kafka,
        "CANDLECAST_DATABASE_URL": settings.database,
        "CANDLECAST_TOPIC_PREFIX": settings.topic_prefix,
        "CANDLECAST_MODEL_DIR": str(settings.model_dir),
        "CANDLECAST_GATEWAY_PORT": str(port),
        "CANDLECAST_ADMIN_TOKEN": settings.admin_token,
        "CANDLECAST_SYMBOLS": ",".join(settings.symbols),
    }


@contextlib.contextmanager
def service_process(command: str, env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`candlecast <command>` in its own process, until its port answers; stopped with SIGTERM."""
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "shared.cli", command], env=env, cwd=PROJECT_ROOT,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        for _ in range(600):
            if proc.poll() is not None:
                raise RuntimeError(f"{command} exited with {proc.returncode}: {log.read_text()[-2000:]}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"{command} did not open port {port} within 30 s: {log.read_text()[-2000:]}")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
async def module_settings(kafka_bootstrap: str, postgres_url: str, tmp_path_factory: pytest.TempPathFactory
                          ) -> AsyncIterator[Settings]:
    """Like `settings` but shared by a module's tests (schemathesis runs many cases on one server)."""
    url = await new_database(postgres_url)
    prefix = f"t{uuid.uuid4().hex[:10]}-"
    module = Settings(kafka_bootstrap=kafka_bootstrap, database_url=url, topic_prefix=prefix, kafka_partitions=1,
                      model_dir=tmp_path_factory.mktemp("models"), admin_token=ADMIN_TOKEN)
    await topics.ensure_topics(module)
    yield module
    await drop_database(url)
    await delete_topics(module)
