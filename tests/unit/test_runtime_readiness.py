"""Readiness is derived from flags, and one pause controller owns every reason to pause."""

from __future__ import annotations

import urllib.error
import urllib.request

from prometheus_client import CollectorRegistry, Gauge

from shared.runtime.health import HealthServer, HealthState
from shared.runtime.pause import Backoff, PauseController
from tests.support.fake_kafka import FakeConsumer


def ready_state() -> HealthState:
    return HealthState(model_loaded=True, joined=True)


def readyz(state: HealthState) -> tuple[int, str]:
    server = HealthServer("127.0.0.1", 0, CollectorRegistry(), state)
    server.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/readyz", timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    finally:
        server.stop()


def test_a_starting_service_says_what_it_waits_for() -> None:
    assert HealthState().reasons() == ["model not loaded", "not joined to the consumer group"]
    assert readyz(HealthState()) == (503, "not ready: model not loaded; not joined to the consumer group\n")
    assert readyz(ready_state()) == (200, "ready\n")


def test_scorer_recovery_while_brokers_are_down_is_not_ready_and_says_why() -> None:
    state = ready_state()
    state.scorer_failing = "ScoringError"
    state.brokers_down = True
    state.scorer_failing = None  # the scorer recovers; the brokers are still down
    assert not state.ready()
    assert state.reason == "all brokers down"
    status, body = readyz(state)
    assert status == 503 and body == "not ready: all brokers down\n"


def test_produce_failing_makes_the_service_unready() -> None:
    state = ready_state()
    state.produce_failing = True
    assert not state.ready() and state.reasons() == ["produce failing"]


def test_every_flag_has_its_reason_and_ready_means_none() -> None:
    state = ready_state()
    state.fatal, state.denied, state.brokers_down = "_FATAL", "TOPIC_AUTHORIZATION_FAILED", True
    state.scorer_failing, state.produce_failing = "RuntimeError", True
    assert state.reasons() == [
        "fatal kafka error: _FATAL", "denied by kafka: TOPIC_AUTHORIZATION_FAILED", "all brokers down",
        "scorer failing: RuntimeError", "produce failing",
    ]
    assert state.failing
    state.fatal = state.denied = state.scorer_failing = None
    state.brokers_down = state.produce_failing = False
    assert state.ready() and state.reason == "ready" and not state.failing


class PausedGauge:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.gauge = Gauge("paused", "paused", registry=self.registry)

    def value(self) -> float | None:
        return self.registry.get_sample_value("paused")


def controller() -> tuple[PauseController, FakeConsumer, PausedGauge, list[float]]:
    consumer = FakeConsumer("in")
    consumer.assigned = {0, 1}
    gauge = PausedGauge()
    now = [0.0]
    return PauseController(consumer, gauge.gauge, clock=lambda: now[0]), consumer, gauge, now


def test_one_reason_clearing_does_not_resume_past_another() -> None:
    pauses, consumer, gauge, _ = controller()
    pauses.pause("scorer")
    pauses.backpressure(inflight=11, limit=10)
    assert consumer.paused == {0, 1} and consumer.pause_calls == 1 and gauge.value() == 1
    pauses.resume("scorer")
    assert consumer.paused == {0, 1}, "backpressure still holds"
    pauses.backpressure(inflight=6, limit=10)
    assert consumer.paused == {0, 1}, "resumes only below half the limit"
    pauses.backpressure(inflight=4, limit=10)
    assert consumer.paused == set() and consumer.resume_calls == 1 and gauge.value() == 0


def test_a_timed_pause_lifts_by_itself() -> None:
    pauses, consumer, _, now = controller()
    pauses.pause("produce", for_s=2.0)
    now[0] = 1.9
    pauses.resume_expired()
    assert pauses.reasons == {"produce"}
    now[0] = 2.0
    pauses.resume_expired()
    assert not pauses.paused and consumer.paused == set()


def test_backoff_doubles_up_to_its_limit_and_resets() -> None:
    backoff = Backoff(0.2, 1.0)
    assert [backoff.failed() for _ in range(5)] == [0.2, 0.4, 0.8, 1.0, 1.0]
    backoff.reset()
    assert backoff.failed() == 0.2
