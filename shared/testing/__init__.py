"""Helpers for fault tests and benchmarks on the real components (not used by the services).

    infra.ThrowawayInfra   a Kafka and a Postgres of the test's own, on free ports, to stop and start
    services.ServiceProcess `python -m shared.cli <service>` as a real process: SIGTERM, SIGKILL, restart
    netfaults              a TCP proxy that freezes, a websocket relay that goes quiet
    kafka                  publish raw bytes, end offsets (reading: `shared.kafka_tools`)
    metrics                read a service's /metrics
    models                 a tiny trained champion for tests that need predictions
    waiting.eventually     poll with a deadline, failing at once if a watched process died
"""
