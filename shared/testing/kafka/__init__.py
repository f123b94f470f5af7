"""A real Apache Kafka broker or cluster, assembled from Maven Central jars, for tests and demos."""

from shared.testing.kafka.broker import KafkaBroker, run_broker_forever
from shared.testing.kafka.cluster import KafkaCluster
from shared.testing.kafka.config import ListenerSpec
from shared.testing.kafka.jars import ensure_kafka_jars
from shared.testing.kafka.process import JvmOptions

__all__ = ["JvmOptions", "KafkaBroker", "KafkaCluster", "ListenerSpec", "ensure_kafka_jars", "run_broker_forever"]
