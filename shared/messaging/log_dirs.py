"""Disk used by each topic on the brokers, from Kafka's own DescribeLogDirs (API 35).

aiokafka's admin client has no call for it (0.14), so the request is declared here with aiokafka's
protocol types, version 1 (Kafka 1.1 and later; Kafka 4 dropped only version 0), and sent to
every broker. A replicated partition counts once per replica: it is the disk the cluster uses.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Boolean, Int16, Int32, Int64, Schema, String


class DescribeLogDirsResponse_v1(Response):
    API_KEY = 35
    API_VERSION = 1
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("results", Array(
            ("error_code", Int16),
            ("log_dir", String("utf-8")),
            ("topics", Array(
                ("name", String("utf-8")),
                ("partitions", Array(
                    ("partition_index", Int32),
                    ("partition_size", Int64),
                    ("offset_lag", Int64),
                    ("is_future_key", Boolean),
                )),
            )),
        )),
    )


class DescribeLogDirsRequest_v1(RequestStruct):
    API_KEY = 35
    API_VERSION = 1
    RESPONSE_TYPE = DescribeLogDirsResponse_v1
    SCHEMA = Schema(("topics", Array(("topic", String("utf-8")), ("partitions", Array(Int32)))))


class DescribeLogDirsRequest(Request[DescribeLogDirsRequest_v1]):
    API_KEY = 35

    def build(self, request_struct_class: type[DescribeLogDirsRequest_v1]) -> DescribeLogDirsRequest_v1:
        return request_struct_class(None)  # every topic


async def topic_bytes(bootstrap: str, prefix: str = "", timeout_ms: int = 10_000) -> dict[str, int]:
    """Bytes on disk per topic (all replicas, all brokers) of the topics whose name starts with `prefix`.

    A broker that does not answer is left out (its share is missing from the figures until it is
    back), so one broker down does not blind the metric."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms)
    await admin.start()
    sizes: Counter[str] = Counter()
    try:
        for broker in admin._client.cluster.brokers():  # aiokafka has no public per-node call
            try:
                response = await admin._send_request_to_node(broker.nodeId, DescribeLogDirsRequest())
            except Exception:
                continue
            body: dict[str, Any] = response.to_object()
            for log_dir in body["results"]:
                if log_dir["error_code"]:
                    continue
                for topic in log_dir["topics"]:
                    if topic["name"].startswith(prefix) and not topic["name"].startswith("__"):
                        sizes[topic["name"]] += sum(int(p["partition_size"]) for p in topic["partitions"])
    finally:
        await admin.close()
    return dict(sizes)
