"""Broker faults on a 3-node cluster (RF 3, min ISR 2) while the echo service scores a stream.

Every test counts by *input offset* (see :mod:`tests.support.faults`, which holds the helpers
these tests share with test_disk_full.py): the set of (partition, offset) pairs in the input topic
must equal the set of ``x-source-partition``/``x-source-offset`` pairs in the output. The
figures (sent, scored, lost, duplicated, recovery time) are printed and copied into
``docs/reliability.md``. Event counts are smaller than the issue's 50,000 to keep this module
within a few minutes on a 2-core machine; the runtime's own kill test covers 50,000.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin._config import AlterConfigOpType, ConfigEntry, ConfigResource
from confluent_kafka.admin._resource import ResourceType

from tests.support.faults import (
    PARTITIONS,
    Supervised,
    Topics,
    echo_env,
    events,
    produce_in_background,
    scored_total,
    settle,
    sources,
    wait_for,
)
from tools.broker.kafka import KafkaCluster
from tools.broker.kafka.admin import admin_client, create_topics
from tools.supervisor import ServiceProcess, collect, http_get, produce

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 10_000


@pytest.fixture
def topics(kafka_cluster: KafkaCluster) -> Topics:
    name = f"fault-{uuid.uuid4().hex[:10]}"
    made = Topics(name, f"{name}.out", f"{name}.dlq")
    create_topics(kafka_cluster.bootstrap_servers, {made.input: PARTITIONS, made.output: PARTITIONS,
                                                    made.dlq: PARTITIONS})
    return made


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        parts = consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in parts if tp.offset >= 0}


def kill_and_restart(cluster: KafkaCluster, node: int, outage_s: float) -> tuple[int, int]:
    """SIGKILL ``node``, keep it down ``outage_s``; returns the outage as wall-clock ms."""
    start_ms = int(time.time() * 1000)
    cluster.kill(node)
    time.sleep(outage_s)
    end_ms = int(time.time() * 1000)
    cluster.start(node)
    return start_ms, end_ms


def scored_between(bootstrap: str, topic: str, window_ms: tuple[int, int]) -> int:
    """Scores the service produced during ``window_ms`` that reached the output topic, by their
    record timestamps. Counted from the topic, not the service's metrics: a supervisor restart
    (the crash-only answer to a static member fenced after a coordinator failover) starts the
    process's counters from zero again."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{uuid.uuid4().hex}",
                         "enable.partition.eof": True, "isolation.level": "read_committed"})
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        pending, count, deadline = set(range(PARTITIONS)), 0, time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition())
                    continue
                count += window_ms[0] <= msg.timestamp()[1] <= window_ms[1]
    finally:
        consumer.close()
    return count


@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
def test_one_broker_sigkilled_mid_stream_loses_nothing(
    delivery: str, kafka_cluster: KafkaCluster, topics: Topics, tmp_path: Path
) -> None:
    bootstrap = kafka_cluster.bootstrap_servers
    env = echo_env(bootstrap, topics, RUNTIME__DELIVERY=delivery)
    with Supervised(ServiceProcess("echo", env, tmp_path / "echo.log")) as supervisor:
        service = supervisor.service
        service.wait_ready(90)
        producer = produce_in_background(bootstrap, topics.input, EVENTS, seconds=8)
        time.sleep(2)
        victim = kafka_cluster.leader_of(topics.input, 0)
        outage = kill_and_restart(kafka_cluster, victim, outage_s=10)
        restarted = time.monotonic()
        producer.join(180)
        outcome = settle(bootstrap, topics, restarted, f"broker {victim} SIGKILL, {delivery}")
        restarts = supervisor.restarts
    during = scored_between(bootstrap, topics.output, outage)
    print(f"[broker SIGKILL, {delivery}] scored while the broker was down: {during:.0f}; restarts={restarts}")
    assert outcome.lost == 0
    assert during > 0, "scoring must continue while one of three brokers is down"
    if delivery == "exactly_once":
        assert outcome.duplicates == 0


def test_leaders_of_the_input_and_the_output_partition_killed_in_turn(
    kafka_cluster: KafkaCluster, topics: Topics, tmp_path: Path
) -> None:
    bootstrap = kafka_cluster.bootstrap_servers
    with Supervised(ServiceProcess("echo", echo_env(bootstrap, topics), tmp_path / "echo.log")) as supervisor:
        service = supervisor.service
        service.wait_ready(90)
        producer = produce_in_background(bootstrap, topics.input, EVENTS, seconds=16)
        time.sleep(1.5)
        input_leader = kafka_cluster.leader_of(topics.input, 1)
        # 8 s: longer than the cluster's 3 s broker session, so leadership moves while it is down
        outage_in = kill_and_restart(kafka_cluster, input_leader, outage_s=8)
        output_leader = kafka_cluster.leader_of(topics.output, 2)
        # every batch has a score for output partition 2, so nothing completes until its leader has
        # moved: give the failover (3 s broker session, election, metadata refresh) time to finish
        outage_out = kill_and_restart(kafka_cluster, output_leader, outage_s=14)
        restarted = time.monotonic()
        producer.join(180)
        outcome = settle(bootstrap, topics, restarted,
                         f"leader kills: input[1] on node {input_leader}, output[2] on node {output_leader}")
        restarts = supervisor.restarts
    during_in = scored_between(bootstrap, topics.output, outage_in)
    during_out = scored_between(bootstrap, topics.output, outage_out)
    print(f"[leader kills] scored during input-leader outage={during_in:.0f}, "
          f"output-leader outage={during_out:.0f}; restarts={restarts}")
    assert outcome.lost == 0
    assert during_in > 0 and during_out > 0


def test_whole_cluster_stopped_then_restarted_services_go_unready_and_recover(
    kafka_cluster: KafkaCluster, topics: Topics, tmp_path: Path
) -> None:
    outage_s = 30.0
    bootstrap = kafka_cluster.bootstrap_servers
    # a slow model leaves a backlog in flight when the cluster goes away
    env = echo_env(bootstrap, topics, DELAY_MS="40", RUNTIME__MAX_BATCH_SIZE="100")
    with Supervised(ServiceProcess("echo", env, tmp_path / "echo.log")) as supervisor:
        service = supervisor.service
        service.wait_ready(90)
        produce(bootstrap, topics.input, events(0, EVENTS // 2), enable_idempotence=True)
        time.sleep(1)
        stopped_at = time.monotonic()
        kafka_cluster.stop_all()  # SIGTERM to every node; returns once they have exited
        wait_for(lambda: not service.ready(), outage_s, "the service to report not-ready")
        not_ready_after = time.monotonic() - stopped_at
        time.sleep(max(outage_s - (time.monotonic() - stopped_at), 0))
        assert not service.ready() and service.alive()
        restarting = time.monotonic()
        kafka_cluster.start_all()
        back = time.monotonic()
        wait_for(service.ready, 120, "the service to become ready again")
        ready_after = time.monotonic() - restarting
        produce(bootstrap, topics.input, events(EVENTS // 2, EVENTS), enable_idempotence=True)
        outcome = settle(bootstrap, topics, back, f"cluster stopped {outage_s:.0f}s")
        restarts = supervisor.restarts
    print(f"[cluster stop] not-ready {not_ready_after:.1f}s after the stop began; ready {ready_after:.1f}s after "
          f"the restart began (cluster up after {back - restarting:.1f}s); restarts={restarts}")
    assert outcome.lost == 0


def test_broker_frozen_beyond_the_session_timeout_then_resumed(
    kafka_cluster: KafkaCluster, topics: Topics, tmp_path: Path
) -> None:
    bootstrap = kafka_cluster.bootstrap_servers
    with Supervised(ServiceProcess("echo", echo_env(bootstrap, topics), tmp_path / "echo.log")) as supervisor:
        service = supervisor.service
        service.wait_ready(90)
        producer = produce_in_background(bootstrap, topics.input, EVENTS, seconds=10)
        time.sleep(1.5)
        victim = kafka_cluster.leader_of(topics.input, 0)
        before = scored_total(service)
        kafka_cluster.freeze(victim)  # SIGSTOP: sockets open, nothing answered
        time.sleep(12)  # > the service's 6 s session timeout and the cluster's 3 s broker session
        during = scored_total(service) - before
        kafka_cluster.thaw(victim)
        thawed = time.monotonic()
        producer.join(180)
        outcome = settle(bootstrap, topics, thawed, f"broker {victim} SIGSTOP 12s")
        restarts = supervisor.restarts
    # No "scored meanwhile" assertion: requests already sent to a frozen broker wait for
    # librdkafka's request timeout (30 s by default), so with default client settings the
    # service stalls for the freeze; the figure is recorded in docs/reliability.md.
    print(f"[freeze] scored while node {victim} was frozen: {during:.0f}; restarts={restarts}")
    assert outcome.lost == 0


def _set_topic_config(bootstrap: str, topic: str, name: str, value: str) -> None:
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)])
    admin = admin_client(bootstrap)  # held until the futures resolve: destroying it fails them
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)


def test_unwritable_output_pauses_commits_until_it_is_writable_again(
    kafka_cluster: KafkaCluster, topics: Topics, tmp_path: Path
) -> None:
    bootstrap = kafka_cluster.bootstrap_servers
    env = echo_env(bootstrap, topics)
    group = env["GROUP_ID"]
    with Supervised(ServiceProcess("echo", env, tmp_path / "echo.log")) as supervisor:
        service = supervisor.service
        service.wait_ready(90)
        produce(bootstrap, topics.input, events(0, 2000))
        wait_for(lambda: sum(committed(bootstrap, group, topics.input).values()) == 2000, 60, "first commits")
        # every batch is now too large for the output topic: the broker refuses each produce
        # (MESSAGE_TOO_LARGE, not retriable), as it would a revoked ACL or a full quota
        _set_topic_config(bootstrap, topics.output, "max.message.bytes", "64")
        blocked_at = time.monotonic()
        produce(bootstrap, topics.input, events(2000, 5000))
        time.sleep(8)
        marks = committed(bootstrap, group, topics.input)
        published = set(sources(collect(bootstrap, [topics.output], lambda rs: False, timeout_s=5)))
        time.sleep(3)
        assert committed(bootstrap, group, topics.input) == marks, "commits moved while nothing could be published"
        unpublished_but_committed = [(p, o) for p, mark in marks.items() for o in range(mark)
                                     if (p, o) not in published]
        _set_topic_config(bootstrap, topics.output, "max.message.bytes", "1048588")
        restored = time.monotonic()
        outcome = settle(bootstrap, topics, restored, "output unwritable (max.message.bytes=64) ~15s")
        restarts = supervisor.restarts
    print(f"[unwritable output] restarts={restarts}; committed while blocked={sum(marks.values())} of 5000; "
          f"blocked for {restored - blocked_at:.1f}s")
    assert unpublished_but_committed == [], "input was committed without its output"
    assert sum(marks.values()) < 5000
    assert outcome.lost == 0


def _coordinator_of(bootstrap: str, group: str) -> int:
    """The node coordinating ``group``, made to exist first (an offset committed on a probe topic)."""
    probe = f"{group}.probe"
    create_topics(bootstrap, {probe: 1})
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(probe, 0, 0)], asynchronous=False)
    finally:
        consumer.close()
    admin = admin_client(bootstrap)
    deadline = time.monotonic() + 30
    while True:
        (future,) = admin.describe_consumer_groups([group], request_timeout=10).values()
        try:
            return int(future.result(10).coordinator.id)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def _create_led_by(bootstrap: str, topic: str, leaders: list[int], nodes: list[int]) -> None:
    """``topic`` with one partition per entry of ``leaders``, each led by that node, RF 3."""
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    from tools.broker.kafka.admin import wait_for_topic

    assignment = [[leader, *[n for n in nodes if n != leader]] for leader in leaders]
    admin = admin_client(bootstrap)
    new = NewTopic(topic, num_partitions=len(leaders), replica_assignment=assignment)
    (future,) = admin.create_topics([new]).values()
    future.result(30)
    wait_for_topic(bootstrap, topic, len(leaders))


def test_a_frozen_leader_stalls_its_partitions_only(kafka_cluster: KafkaCluster, tmp_path: Path) -> None:
    """The victim leads input partitions 0 and 1 and nothing else the service needs (not its group
    coordinator, no output partition): those two are reported stalled while 2 and 3 keep scoring,
    and all recover after the thaw with nothing lost."""
    bootstrap = kafka_cluster.bootstrap_servers
    name = f"stall-{uuid.uuid4().hex[:10]}"
    topics = Topics(name, f"{name}.out", f"{name}.dlq")
    nodes = sorted(node.node_id for node in kafka_cluster.nodes)
    victim = next(n for n in nodes if n != _coordinator_of(bootstrap, f"g-{name}"))
    others = [n for n in nodes if n != victim]
    _create_led_by(bootstrap, topics.input, [victim, victim, others[0], others[1]], nodes)
    for topic in (topics.output, topics.dlq):
        _create_led_by(bootstrap, topic, [others[0], others[1], others[0], others[1]], nodes)
    env = echo_env(bootstrap, topics, RUNTIME__STALL_AFTER_S="10")
    with Supervised(ServiceProcess("echo", env, tmp_path / "echo.log")) as supervisor:
        service = supervisor.service
        service.wait_ready(90)
        # A producer holding a connection to a frozen leader waits for it as long as a consumer
        # does, so records keep arriving only from producers that bootstrap from the live nodes and
        # give up on a silent broker after 2 s; and partitions 2 and 3 have a producer of their own,
        # so a chunk waiting for the frozen leader's partitions never holds theirs back (in one CI
        # run a shared producer starved them, and nothing could be scored there).
        live = lambda: ",".join(n.bootstrap for n in kafka_cluster.nodes if n.running and not n.frozen)  # noqa: E731
        config = {"acks": "all", "request.timeout.ms": 2000, "delivery.timeout.ms": 60_000}
        producers = [produce_in_background(live, topics.input, EVENTS // 2, seconds=45, chunks=225, config=config,
                                           partitions=part) for part in ([0, 1], [2, 3])]
        time.sleep(3)
        kafka_cluster.freeze(victim)
        frozen_at = time.monotonic()
        named: set[str] = set()
        scored_at_first_stall, stalled_after = None, float("nan")
        while time.monotonic() - frozen_at < 25:  # the stall time is 10 s; leadership moves within ~3 s
            body = http_get(service.metrics_port, "/readyz")[1]
            found = set(re.findall(rf"{re.escape(topics.input)}\[(\d)\]", body))
            if found and scored_at_first_stall is None:
                scored_at_first_stall, stalled_after = scored_total(service), time.monotonic() - frozen_at
            named |= found
            time.sleep(0.5)
        scored_meanwhile = scored_total(service) - (scored_at_first_stall or 0)
        metrics = service.metrics()
        kafka_cluster.thaw(victim)
        thawed = time.monotonic()
        recovered = wait_for(lambda: http_get(service.metrics_port, "/readyz")[0] == 200, 90, "ready again")
        for producer in producers:
            producer.join(180)
        outcome = settle(bootstrap, topics, thawed, f"leader {victim} of partitions 0, 1 frozen")
    print(f"[stall] node {victim} frozen: partitions {sorted(named)} named stalled {stalled_after:.1f}s after the "
          f"freeze; {scored_meanwhile:.0f} events scored on the others meanwhile; ready {recovered:.1f}s after "
          f"the thaw; lost={outcome.lost}")
    # Each of partitions 0 and 1 is stalled until its fetch from the frozen leader times out; one
    # that librdkafka moves to its new leader before the stall time has passed is rightly not named.
    assert named and named <= {"0", "1"}, "the frozen leader's partitions, and only those"
    assert scored_meanwhile > 0, "the other partitions keep scoring"
    assert re.search(rf'shopstream_partition_stalls_total{{[^}}]*topic="{re.escape(topics.input)}"[^}}]*}} [1-9]',
                     metrics)
    assert outcome.lost == 0
