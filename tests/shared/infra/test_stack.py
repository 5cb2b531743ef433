"""`candlecast up` brings the four services up, each answering on its port; `down` leaves nothing."""

from pathlib import Path

import httpx

from shared.config import Settings
from shared.infra import stack
from shared.infra.process import port_open


def test_up_status_down(settings: Settings, tmp_path: Path, unused_tcp_port_factory) -> None:  # type: ignore[no-untyped-def]
    ports = [unused_tcp_port_factory() for _ in range(4)]
    s = settings.model_copy(update={
        "data_dir": tmp_path,
        "gateway_port": ports[0],
        "ingestor_metrics_port": ports[1],
        "predictor_metrics_port": ports[2],
        "trainer_metrics_port": ports[3],
    })
    try:
        stack.up(s)
        rows = dict(stack.status(s))
        for name in stack.SERVICES:
            assert "answering" in rows[name] and "not answering" not in rows[name], rows[name]
        assert rows["kafka"].startswith("external") and rows["postgres"].startswith("external")
        assert httpx.get(f"http://127.0.0.1:{ports[0]}/health").json() == {"status": "ok"}
        assert httpx.get(f"http://127.0.0.1:{ports[0]}/ready").json() == {"status": "ready"}
        for port in ports[1:]:
            body = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            assert "process_resident_memory_bytes" in body
        stack.up(s)  # idempotent: finds them running
        assert dict(stack.status(s)) == rows
    finally:
        stack.down(s)
    assert not any(port_open("127.0.0.1", p) for p in ports)
    assert all(not stack.process(s, name).running() for name in stack.SERVICES)
