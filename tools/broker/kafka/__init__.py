"""A real Apache Kafka broker or cluster, assembled from Maven Central jars, for tests and demos."""

from tools.broker.kafka.broker import KafkaBroker, run_broker_forever
from tools.broker.kafka.cluster import KafkaCluster
from tools.broker.kafka.config import ListenerSpec
from tools.broker.kafka.jars import ensure_kafka_jars
from tools.broker.kafka.process import JvmOptions

__all__ = ["JvmOptions", "KafkaBroker", "KafkaCluster", "ListenerSpec", "ensure_kafka_jars", "run_broker_forever"]
