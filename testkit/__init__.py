"""Helpers for the tests and the benchmarks on the real components; never installed, never in the image.

    infra.ThrowawayInfra    a Kafka and a Postgres of the test's own, on free ports, to stop and start
    services.ServiceProcess `python -m shared.cli <service>` as a real process: SIGTERM, SIGKILL, restart
    netfaults               a TCP proxy that freezes, a websocket relay that goes quiet
    kafka                   read a topic, committed and end offsets, raw bytes in, delete topics
    metrics                 read a service's /metrics
    models                  a tiny trained champion for tests that need predictions
    invariants              contiguous unique candles, one futures row per predicted candle
    ports.free_port         a port nothing listens on
    waiting.eventually      poll with a deadline, failing at once if the watched service died
"""
