"""Admin calls, behind the admin token: asking for a training run."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field

from services.gateway.deps import SettingsDep, require_admin, resolve_interval, resolve_symbol
from services.gateway.schemas import Problem
from shared.messaging import topics
from shared.messaging.events import TrainRequest

router = APIRouter(tags=["admin"], dependencies=[Depends(require_admin)])


class TrainBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: str | None = Field(default=None, max_length=20, description="default: the first configured symbol")
    interval: str | None = Field(default=None, max_length=4, description="default: the first configured interval")
    reason: str = Field(default="manual", max_length=200)


@router.post(
    "/train",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TrainRequest,
    responses={
        400: {"model": Problem, "description": "the body is not JSON"},
        401: {"model": Problem, "description": "missing or wrong admin token"},
        404: {"model": Problem, "description": "symbol or interval not served"},
        503: {"model": Problem, "description": "Kafka not reachable"},
    },
)
async def train(
    request: Request, settings: SettingsDep, body: Annotated[TrainBody | None, Body()] = None
) -> TrainRequest:
    """Publish a `TrainRequest`; the trainer picks it up. 202: asked, not yet trained."""
    body = body or TrainBody()
    symbol = resolve_symbol(settings, body.symbol)
    interval = resolve_interval(settings, body.interval)
    if not request.app.state.kafka_connected.is_set():
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "Kafka is not reachable yet; try again shortly")
    event = TrainRequest(symbol=symbol, interval=interval, reason=body.reason)
    await request.app.state.broker.publish(event, settings.topic(topics.TRAIN_REQUESTS), key=topics.symbol_key(symbol))
    return event
