"""``shopstream models``: roll a model version out, promote it on evidence, roll it back.

* ``models rollout <service> --shadow V | --canary V --share F | --off`` sets the service's
  rollout plan on its config topic; every instance follows it between two batches.
* ``models promote <service> <version>`` judges the candidate's live quality against the live
  version's (:mod:`tools.rollout.gate`) and, if it passes or ``--force`` is given, makes it live;
  a refusal is recorded too. The decision, its evidence and who asked go to the compacted
  model-events topic, which every instance follows.
* ``models rollback <service>`` makes the version the last promotion replaced live again.
* ``models status <service>`` shows the latest decision, the plan and the monitor's measures.

Exit status: 0 done, 1 runtime failure, 2 bad arguments, 3 refused by the gate.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from services.registry import SHOP_SERVICES
from shared.errors import ConfigError, ModelError
from shared.models.repository import ModelRepository
from shared.schemas.rollout import LIVE_QUALITY_TOPIC, ModelEvent, RolloutPlan
from shared.settings import KafkaSettings, ServiceSettings
from tools.cli.common import add_bootstrap, fraction, require_reachable, subparsers
from tools.cli.serve import load_settings
from tools.rollout import decisions as d
from tools.rollout.gate import DEFAULT_MARGIN, DEFAULT_MIN_OUTCOMES, judge, quality_of

REFUSED = 3


def register(sub: Any) -> None:
    parser = sub.add_parser("models", help="shadow, canary, promote, roll back a service's model",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = subparsers(parser, "action")

    rollout = actions.add_parser("rollout", help="run a candidate in shadow or as a canary, or stop it")
    _common(rollout)
    mode = rollout.add_mutually_exclusive_group(required=True)
    mode.add_argument("--shadow", metavar="VERSION", help="score every batch with VERSION too, into <output>.shadow")
    mode.add_argument("--canary", metavar="VERSION", help="send --share of the keys to VERSION")
    mode.add_argument("--off", action="store_true", help="stop the candidate")
    rollout.add_argument("--share", type=fraction, default=0.1, help="canary: share of keys (default 0.1)")
    rollout.set_defaults(handler=run_rollout)

    promote = actions.add_parser("promote", help="make VERSION live if its live quality passes the gate")
    _common(promote)
    promote.add_argument("version")
    promote.add_argument("--margin", type=float, default=DEFAULT_MARGIN,
                         help=f"largest loss of the headline measure allowed (default {DEFAULT_MARGIN})")
    promote.add_argument("--min-outcomes", type=int, default=DEFAULT_MIN_OUTCOMES,
                         help=f"outcomes each version needs (default {DEFAULT_MIN_OUTCOMES})")
    promote.add_argument("--force", action="store_true", help="promote whatever the gate says (recorded)")
    promote.set_defaults(handler=run_promote)

    rollback = actions.add_parser("rollback", help="make the version the last promotion replaced live again")
    _common(rollback)
    rollback.add_argument("--to", metavar="VERSION", help="roll back to this version instead")
    rollback.set_defaults(handler=run_rollback)

    status = actions.add_parser("status", help="the latest decision, the rollout plan and live quality")
    _common(status)
    status.set_defaults(handler=run_status)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("service", choices=SHOP_SERVICES)
    add_bootstrap(parser)
    parser.add_argument("--env-file", type=Path, help="the service's settings file (environment wins)")
    parser.add_argument("--models-dir", type=Path, help="the model repository (default: the service's setting)")
    parser.add_argument("--config-topic", help="the service's config topic (default: its setting)")
    parser.add_argument("--model-events-topic", help="default: the service's setting (shopstream.model-events)")
    parser.add_argument("--output-topic", help="the service's output, whose lineage names the version serving "
                        "before any decision (default: its setting)")
    parser.add_argument("--quality-topic", default=LIVE_QUALITY_TOPIC, help="the monitor's live-quality topic")
    parser.add_argument("--who", default=None, help="who asks, for the record (default: user@host)")
    parser.add_argument("--live", metavar="VERSION", help="the version serving now, before any decision "
                        "(default: read from the lineage headers of the service's latest outputs)")


class _Target:
    """The service's settings as the command sees them, with the command line's overrides."""

    def __init__(self, args: argparse.Namespace) -> None:
        settings = load_settings(args.service, args.env_file)
        overrides = {k: v for k, v in (("models_dir", args.models_dir), ("config_topic", args.config_topic),
                                       ("model_events_topic", args.model_events_topic),
                                       ("output_topic", args.output_topic)) if v is not None}
        self.settings: ServiceSettings = settings.model_copy(update=overrides)
        kafka = self.settings.kafka
        if args.bootstrap_servers:
            kafka = KafkaSettings(**{**kafka.model_dump(), "bootstrap_servers": args.bootstrap_servers})
        self.kafka = kafka
        self.service: str = args.service
        self.who: str = args.who or d.requested_by()
        self.quality_topic: str = args.quality_topic
        if not self.settings.model_events_topic:
            raise ConfigError(f"{self.service} has no model-events topic set; decisions need one")
        self.events_topic: str = self.settings.model_events_topic
        self.model_name: str = getattr(self.settings, "model_name", self.service)
        self.live_override: str | None = args.live
        require_reachable(self.kafka)

    def latest(self) -> ModelEvent | None:
        return d.latest_decision(self.kafka, self.events_topic, self.service)

    def live_version(self, latest: ModelEvent | None) -> str:
        """The decided version; before any decision, the one the instances' latest outputs name
        (their settings may pin any version), less a running candidate's."""
        if latest is not None:
            return latest.live_version
        if self.live_override:
            return self.live_override
        plan = self.plan()
        served = d.served_versions(self.kafka, self.settings.output_topic)
        live = sorted(v for v in served if plan is None or v != plan.candidate)
        if len(live) == 1:
            return live[0]
        if not live:
            raise ConfigError(f"no decision for {self.service} yet and no outputs on {self.settings.output_topic} "
                              "name the version serving; say which with --live")
        raise ConfigError(f"{self.service}'s latest outputs come from several versions ({', '.join(live)}); "
                          "say which one is live with --live")

    def plan(self) -> RolloutPlan | None:
        if not self.settings.config_topic:
            return None
        raw = d.read_topic(self.kafka, self.settings.config_topic).get("rollout")
        return None if raw is None else RolloutPlan.model_validate(raw)

    def verify(self, version: str) -> None:
        """The version exists and its files match their checksums: instances could load it."""
        try:
            ModelRepository(self.settings.models_dir).load_verified(self.model_name, version)
        except (ModelError, OSError) as exc:
            raise ConfigError(f"{self.model_name} {version} cannot be served: {exc}") from exc

    def stop_rollout(self) -> None:
        """A decided version ends the rollout that tested it: after a rollback the candidate must
        not come back as a canary by itself."""
        if self.settings.config_topic:
            d.publish_plan(self.kafka, self.settings.config_topic, RolloutPlan())

    def publish(self, event: ModelEvent) -> None:
        d.publish_event(self.kafka, self.events_topic, event)
        print(json.dumps(event.model_dump(mode="json"), indent=2))


def run_rollout(args: argparse.Namespace) -> int:
    target = _Target(args)
    if not target.settings.config_topic:
        raise ConfigError(f"{target.service} has no config topic set; a rollout plan is read from it")
    if args.off:
        plan = RolloutPlan()
    else:
        version = args.shadow or args.canary
        target.verify(version)
        plan = RolloutPlan(mode="shadow" if args.shadow else "canary", candidate=version,
                           share=1.0 if args.shadow else args.share)
    d.publish_plan(target.kafka, target.settings.config_topic, plan)
    print(f"{target.service}: rollout {plan.mode}" + (f" of {plan.candidate} (share {plan.share:g})"
                                                       if plan.candidate else ""))
    return 0


def run_promote(args: argparse.Namespace) -> int:
    target = _Target(args)
    target.verify(args.version)
    latest = target.latest()
    live = target.live_version(latest)
    if live == args.version:
        raise ConfigError(f"{args.version} is already live for {target.service}")
    measured = d.snapshots(target.kafka, target.quality_topic, target.service)
    passed, evidence = judge(target.service, quality_of(measured.get(live)), quality_of(measured.get(args.version)),
                             margin=args.margin, min_outcomes=args.min_outcomes)
    replaced = latest.replaced if latest else ()
    if passed or args.force:
        event = d.next_event(latest, target.service, "promoted", args.version, args.version,
                             replaced=(*replaced, live), forced=not passed, evidence=evidence, who=target.who)
        target.publish(event)
        target.stop_rollout()
        print(f"{target.service}: {args.version} promoted{' by force' if event.forced else ''} "
              f"(was {live}): {evidence.reason}", file=sys.stderr)
        return 0
    target.publish(d.next_event(latest, target.service, "refused", args.version, live, replaced=replaced,
                                forced=False, evidence=evidence, who=target.who))
    print(f"{target.service}: {args.version} refused; {live} stays live: {evidence.reason}", file=sys.stderr)
    return REFUSED


def run_rollback(args: argparse.Namespace) -> int:
    target = _Target(args)
    latest = target.latest()
    live = target.live_version(latest)
    replaced = latest.replaced if latest else ()
    if args.to:
        back, rest = args.to, tuple(v for v in replaced if v != args.to)
        if back != live:
            rest = (*rest, live)
    elif replaced:
        back, rest = replaced[-1], replaced[:-1]
    else:
        raise ConfigError(f"no promotion of {target.service} to roll back; name the version with --to")
    if back == live:
        raise ConfigError(f"{back} is already live for {target.service}")
    target.verify(back)
    target.publish(d.next_event(latest, target.service, "rolled_back", back, back, replaced=rest, forced=False,
                                evidence=None, who=target.who))
    target.stop_rollout()
    print(f"{target.service}: rolled back to {back} (was {live})", file=sys.stderr)
    return 0


def run_status(args: argparse.Namespace) -> int:
    target = _Target(args)
    latest = target.latest()
    plan = target.plan()
    measured = d.snapshots(target.kafka, target.quality_topic, target.service)
    try:
        live: str | None = target.live_version(latest)
    except ConfigError as unknown:
        live = None
        print(f"{target.service}: live version unknown: {unknown}", file=sys.stderr)
    print(json.dumps({
        "service": target.service, "live_version": live,
        "latest_decision": latest.model_dump(mode="json") if latest else None,
        "rollout": plan.model_dump(mode="json") if plan else None,
        "live_quality": {v: s.model_dump(mode="json") for v, s in sorted(measured.items())},
    }, indent=2))
    return 0
