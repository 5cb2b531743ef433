"""FastAPI dependencies: settings, the read-only pool, the stream (symbol, interval), paging, the admin check.

All `async def` although none awaits: FastAPI runs a plain `def` dependency in a thread, which
costs more than the dependency itself on every request.
"""

from __future__ import annotations

import secrets
from typing import Annotated

import asyncpg
from fastapi import Depends, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from services.gateway.cache import StreamCache
from services.gateway.live import Hub
from services.gateway.queries import Paging
from services.gateway.validation import MAX_TIME
from shared.config import Settings
from shared.model.champions import ChampionCache

MAX_LIMIT = 5000


async def get_settings(connection: HTTPConnection) -> Settings:
    settings: Settings = connection.app.state.settings
    return settings


async def get_pool(connection: HTTPConnection) -> asyncpg.Pool:
    pool: asyncpg.Pool = connection.app.state.pool
    return pool


async def get_hub(connection: HTTPConnection) -> Hub:
    hub: Hub = connection.app.state.hub
    return hub


async def get_cache(connection: HTTPConnection) -> StreamCache:
    cache: StreamCache = connection.app.state.cache
    return cache


async def get_champions(connection: HTTPConnection) -> ChampionCache:
    champions: ChampionCache = connection.app.state.champions
    return champions


SettingsDep = Annotated[Settings, Depends(get_settings)]
PoolDep = Annotated[asyncpg.Pool, Depends(get_pool)]
HubDep = Annotated[Hub, Depends(get_hub)]
ChampionsDep = Annotated[ChampionCache, Depends(get_champions)]
CacheDep = Annotated[StreamCache, Depends(get_cache)]


async def get_symbol(
    settings: SettingsDep,
    symbol: Annotated[
        str | None,
        Query(max_length=20, pattern="^[A-Za-z0-9]+$", description="default: the first configured symbol"),
    ] = None,
) -> str:
    return resolve_symbol(settings, symbol)


def resolve_symbol(settings: Settings, symbol: str | None) -> str:
    """A configured symbol; any other is a 404 naming the ones served, not an empty list."""
    if symbol is None:
        return settings.symbols[0]
    chosen = symbol.upper()
    if chosen not in settings.symbols:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"symbol {chosen} is not served here; served: {', '.join(settings.symbols)}"
        )
    return chosen


SymbolDep = Annotated[str, Depends(get_symbol)]


async def get_interval(
    settings: SettingsDep,
    interval: Annotated[
        str | None,
        Query(max_length=4, pattern="^[0-9]+[smhdwM]$", description="default: the first configured interval"),
    ] = None,
) -> str:
    return resolve_interval(settings, interval)


def resolve_interval(settings: Settings, interval: str | None) -> str:
    """A configured interval; any other is a 404 naming the ones served."""
    if interval is None:
        return settings.interval
    if interval not in settings.intervals:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"interval {interval} is not served here; served: {', '.join(settings.intervals)}",
        )
    return interval


IntervalDep = Annotated[str, Depends(get_interval)]


async def get_paging(
    start: Annotated[
        int | None, Query(ge=0, le=MAX_TIME, description="epoch ms, inclusive: the oldest rows from here on")
    ] = None,
    end: Annotated[
        int | None, Query(ge=0, le=MAX_TIME, description="epoch ms, exclusive: the newest rows before this")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="rows per page")] = 500,
) -> Paging:
    if start is not None and end is not None and end <= start:
        # FastAPI's own 422 shape, as for every other bad parameter.
        raise RequestValidationError(
            [{"loc": ["query", "end"], "msg": f"end ({end}) must be after start ({start})", "type": "value_error",
              "input": end}]
        )
    return Paging(start=start, end=end, limit=limit)


PagingDep = Annotated[Paging, Depends(get_paging)]

_bearer = HTTPBearer(auto_error=False, description="the admin token of the gateway's settings")


async def require_admin(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Bearer token equal to `admin_token`; with no token configured, admin calls are closed."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if not settings.admin_token:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "admin calls are disabled: no admin token is configured",
                            headers=challenge)
    if credentials is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "an admin token is required (Authorization: Bearer ...)",
                            headers=challenge)
    if not secrets.compare_digest(credentials.credentials.encode(), settings.admin_token.encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong admin token", headers=challenge)
