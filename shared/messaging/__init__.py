"""Events and topics: the contracts, the topic registry, a service's Kafka runtime, failures, lag."""
