"""The gateway's security: CORS closed by default, body limits, the admin token, the read-only
role, and no start in production mode without secrets. On the real database and Kafka, with the
gateway as a real server (and a real process where the process is what is tested)."""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from services.gateway.app import create_app
from services.gateway.routers.predict import MAX_BODY_BYTES
from services.gateway.security import DEFAULT_MAX_BODY_BYTES
from shared.config import PROJECT_ROOT, Settings
from testkit.ports import free_port
from testkit.services import ServiceProcess, settings_env
from tests.services.gateway.conftest import running, serve

PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}


# -- CORS ----------------------------------------------------------------------------------------


async def test_cors_is_closed_by_default(client: httpx.AsyncClient) -> None:
    origin = {"Origin": "https://elsewhere.example"}
    simple = await client.get("/health", headers=origin)
    assert simple.status_code == 200
    assert "access-control-allow-origin" not in simple.headers
    preflight = await client.options("/predict", headers={**origin, **PREFLIGHT})
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.status_code == 405  # no CORS layer at all: OPTIONS is just not a route


async def test_cors_allows_the_configured_origins_only(gateway_settings: Settings) -> None:
    allowed = "https://dashboard.example"
    settings = gateway_settings.model_copy(update={"cors_origins": [allowed]})
    async with running(create_app(settings)) as client:
        ok = await client.options("/predict", headers={"Origin": allowed, **PREFLIGHT})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == allowed
        assert "access-control-allow-credentials" not in ok.headers

        other = await client.options("/predict", headers={"Origin": "https://evil.example", **PREFLIGHT})
        assert other.status_code == 400
        assert "access-control-allow-origin" not in other.headers
        simple = await client.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in simple.headers


def test_cors_origins_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CANDLECAST_CORS_ORIGINS", raising=False)
    assert Settings(_env_file=None).cors_origins == []  # type: ignore[call-arg]
    monkeypatch.setenv("CANDLECAST_CORS_ORIGINS", "https://a.example, https://b.example")
    origins = Settings(_env_file=None).cors_origins  # type: ignore[call-arg]
    assert origins == ["https://a.example", "https://b.example"]


# -- body limits ------------------------------------------------------------------------------------


async def _raw_request(base_url: str, head: bytes, body_parts: list[bytes]) -> tuple[int, dict[str, object]]:
    """Send a request by hand (so the body can lie about its size or never end); read the answer.

    The answer is read without finishing the body: a server that waits for the whole body
    before answering never answers, and the test fails on the read's timeout.
    """
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head)
        for part in body_parts:
            writer.write(part)
            await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 30)
        headers: dict[str, str] = {}
        while (line := await asyncio.wait_for(reader.readline(), 30)) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 30)
        return int(status_line.split()[1]), json.loads(body)
    finally:
        writer.close()


async def test_a_100_mb_body_is_refused_before_it_is_read(gateway_settings: Settings) -> None:
    """Content-Length says 100 MB; 64 KiB are sent, and the 413 comes back all the same."""
    async with serve(gateway_settings) as url:
        head = (b"POST /predict HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
                b"Content-Length: 104857600\r\n\r\n")
        status, body = await _raw_request(url, head, [b"[" * 65536])
    assert status == 413
    assert str(MAX_BODY_BYTES) in str(body["detail"])


async def test_a_chunked_body_is_cut_off_at_the_limit(gateway_settings: Settings) -> None:
    """No Content-Length, a body that never ends: refused once the limit is passed."""
    chunk = b"[" * 65536
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    parts = [framed] * (MAX_BODY_BYTES // len(chunk) + 2)  # just over the limit, and no final chunk
    async with serve(gateway_settings) as url:
        head = (b"POST /predict HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        status, body = await _raw_request(url, head, parts)
    assert status == 413
    assert str(MAX_BODY_BYTES) in str(body["detail"])


async def test_a_large_body_within_the_limit_is_read_and_judged(client: httpx.AsyncClient) -> None:
    body = b'{"candles": [' + b" " * (MAX_BODY_BYTES - 100) + b"]}"
    answer = await client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422  # parsed: too few candles, not "too large"


async def test_a_large_upload_is_refused_too(client: httpx.AsyncClient) -> None:
    answer = await client.post("/predict", files={"file": ("big.csv", b"0" * (MAX_BODY_BYTES + 1))})
    assert answer.status_code == 413


async def test_other_routes_take_small_bodies_only(client: httpx.AsyncClient) -> None:
    answer = await client.post("/train", content=b"{" + b" " * DEFAULT_MAX_BODY_BYTES + b"}",
                               headers={"content-type": "application/json"})
    assert answer.status_code == 413
    assert str(DEFAULT_MAX_BODY_BYTES) in answer.json()["detail"]


# -- the admin token ----------------------------------------------------------------------------------


async def test_the_admin_token_is_compared_in_constant_time(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through `secrets.compare_digest` (whose time does not depend on where the bytes differ)."""
    compared: list[tuple[bytes, bytes]] = []
    real = secrets.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(secrets, "compare_digest", spy)
    token = client._transport.app.state.settings.admin_token  # type: ignore[attr-defined]
    for sent in ("x", token[:-1] + "?", token + "x"):
        answer = await client.post("/train", headers={"Authorization": f"Bearer {sent}"})
        assert answer.status_code == 401
    assert [a for a, _ in compared] == [b"x", (token[:-1] + "?").encode(), (token + "x").encode()]
    assert all(b == token.encode() for _, b in compared)


async def test_the_admin_token_is_never_logged_nor_echoed(settings: Settings, tmp_path: Path) -> None:
    """A real gateway process at debug level: neither the token nor a wrong guess reaches its log."""
    token = f"tok-{uuid.uuid4().hex}"
    guess = f"guess-{uuid.uuid4().hex}"
    port = free_port()
    gateway = ServiceProcess("gateway", settings.model_copy(update={"admin_token": token, "gateway_port": port}),
                             tmp_path, verbose=True)
    await gateway.started()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            wrong = await http.post("/train", headers={"Authorization": f"Bearer {guess}"})
            assert wrong.status_code == 401
            assert guess not in wrong.text and token not in wrong.text
            right = await http.post("/train", headers={"Authorization": f"Bearer {token}"}, json={"reason": "t"})
            assert right.status_code in (202, 503)  # 503 while Kafka is still connecting
            assert token not in right.text
            for path in ("/metrics", "/openapi.json", "/symbols", "/asyncapi"):
                page = await http.get(path)
                assert token not in page.text, path
    finally:
        assert await gateway.terminate() == 0
    log = gateway.log_text()
    assert "DEBUG" in log  # the log was as talkative as it gets
    assert token not in log and guess not in log


def test_settings_do_not_show_secrets_when_printed() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, admin_token="s3cret-token", readonly_password="s3cret-pw",
        database_url="postgresql://u:s3cret-db@h/x",
    )
    shown = repr(settings) + str(settings)
    assert "s3cret-token" not in shown and "s3cret-pw" not in shown and "s3cret-db" not in shown
    assert "admin_token" not in shown and "symbols=['BTCUSDT']" in shown


# -- the database role ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO candles (symbol, interval, open_time, close_time, open, high, low, close, volume, quote_volume,"
        " trades, taker_buy_base_volume, taker_buy_quote_volume) VALUES ('X', '5m', 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0)",
        "UPDATE models SET status = 'champion'",
        "DELETE FROM futures",
        "CREATE TABLE sneaky (x int)",
        "TRUNCATE job_logs",
    ],
)
async def test_the_gateway_role_cannot_write(client: httpx.AsyncClient, statement: str) -> None:
    pool: asyncpg.Pool = client._transport.app.state.pool  # type: ignore[attr-defined]
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await pool.execute(statement)


# -- production mode ---------------------------------------------------------------------------------------


def _production_env(settings: Settings, **unset: bool) -> dict[str, str]:
    env = settings_env(settings.model_copy(update={"admin_token": "a-real-token", "gateway_port": free_port()}))
    env.update({"CANDLECAST_MODE": "production", "CANDLECAST_READONLY_PASSWORD": "not-the-default"})
    for name in unset:
        env.pop(f"CANDLECAST_{name.upper()}", None)
    return env


@pytest.mark.parametrize(
    "missing",
    [
        ("admin_token", "readonly_password", "database_url", "kafka_bootstrap"),
        ("admin_token",),
        ("readonly_password",),
    ],
)
async def test_production_mode_refuses_to_start_without_secrets(settings: Settings, missing: tuple[str, ...]) -> None:
    env = _production_env(settings, **dict.fromkeys(missing, True))
    port = int(env["CANDLECAST_GATEWAY_PORT"])
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shared.cli", "gateway", env=env, cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = output.decode()
    assert proc.returncode == 2, text
    assert "refuses to start" in text and "Traceback" not in text
    for name in missing:
        assert f"CANDLECAST_{name.upper()}" in text
    named = {n for n in ("admin_token", "readonly_password", "database_url", "kafka_bootstrap")
             if f"CANDLECAST_{n.upper()}" in text}
    assert named == set(missing)
    assert f":{port}" not in text  # never got as far as listening


async def test_production_mode_starts_with_every_secret_set(settings: Settings, tmp_path: Path) -> None:
    prod = settings.model_copy(update={
        "mode": "production",
        "admin_token": "a-real-token",
        "readonly_password": "not-the-default",
        # The test database's reader keeps its dev password, so its URL is given explicitly.
        "database_readonly_url": settings.database_readonly,
        "gateway_port": free_port(),
    })
    gateway = await ServiceProcess("gateway", prod, tmp_path).started()
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            assert (await http.get(f"http://127.0.0.1:{gateway.port}/ready")).json() == {"status": "ready"}
    finally:
        assert await gateway.terminate() == 0
