from shared.infra import kafka


def test_cluster_ids_never_look_like_options() -> None:
    ids = {kafka._random_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert not any(i.startswith("-") for i in ids)
    assert all(len(i) == 22 for i in ids)


def test_kafka_version_comes_from_the_pom() -> None:
    assert kafka.kafka_version().startswith("4.")
    assert kafka.cache_dir().name == f"kafka-{kafka.kafka_version()}"
