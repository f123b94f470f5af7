"""Replay of the real data sets as shop events: ``shopstream produce beauty|ulb|ipinyou``.

Each adapter turns one public data set into valid input events of the shop's schemas. The
data sets carry far fewer fields than the schemas ask for, so every mapping says which
column feeds which field and which fields are fixed placeholders:

* ``beauty``: Amazon Beauty 5-core sequences (S3-Rec preprocessing) as :class:`ClickEvent`\\s
  on ``clickstream.events``, user by user in file order, each user's items in their
  chronological order. See :func:`beauty_events`.
* ``ulb``: the ULB/Worldline card-fraud sample as :class:`Transaction`\\s on
  ``payments.transactions``, sorted by ``Time``. See :func:`ulb_events`.
* ``ipinyou``: iPinYou RTB impressions (advertiser 2997) as :class:`AdRequest`\\s on
  ``ads.impressions``, train day then test day. See :func:`ipinyou_events`.
* ``banking77``: BANKING77's test messages as :class:`SupportMessage`\\s on ``support.messages``.
  See :func:`tools.loadgen.support.banking77_labelled`.

Every event is built through its pydantic model, so a replayed event is valid by construction.
Labels (fraud ``Class``, iPinYou ``click``, BANKING77's intent) are not part of the input schemas: they leave the
events, and with ``--feedback-topic`` they come back as the shop's outcomes
(:func:`replay_rows`, shaped like the simulated shop's truth).
The data are read from ``--data-dir`` (default ``<repo>/../shared/data``), never copied.
"""

from __future__ import annotations

import csv
import gzip
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from shared.errors import ConfigError
from shared.schemas.ads import AdCandidate, AdRequest, Device
from shared.schemas.clickstream import ClickEvent
from shared.schemas.payments import Transaction
from shared.schemas.registry import TOPICS
from tools.loadgen.feedback import LabelledRecord
from tools.loadgen.generator import Record
from tools.loadgen.support import BANKING77_FILES, banking77_events, banking77_labelled

logger = logging.getLogger(__name__)

FILES: dict[str, tuple[str, ...]] = {
    "beauty": ("seqrec-amazon-beauty-s3rec/Beauty.txt.gz",),
    "ulb": ("fraud-ulb-creditcard-sample/creditcard_sample.csv.gz",),
    "ipinyou": ("ctr-ipinyou-fnn-sample/train.csv.gz", "ctr-ipinyou-fnn-sample/test.csv.gz"),
    "banking77": BANKING77_FILES,
}
REPLAY_SCENARIOS = tuple(FILES)
ROLE_OF = {"beauty": "clickstream", "ulb": "transactions", "ipinyou": "ad_requests", "banking77": "support_messages"}

BEAUTY_START = datetime(2014, 7, 1, tzinfo=UTC)
"""The 5-core review file ends in July 2014; the replay clock starts there."""
BEAUTY_STEP_MS = 1_000
ULB_START = datetime(2013, 9, 1, tzinfo=UTC)
"""ULB's ``Time`` counts seconds from the first transaction of two days in September 2013."""
IPINYOU_SUNDAY = datetime(2013, 10, 20, tzinfo=timezone(timedelta(hours=8)))
"""Season 3 ran 19-27 Oct 2013; ``weekday`` counts from Sunday (train is 2 = Tuesday,
test 5 = Friday) and ``hour`` is Beijing time."""
SLOTPRICE_MID = {"0": 0.5, "1-10": 5.5, "11-50": 30.5, "51-100": 75.5, "101+": 150.0}
"""Midpoints of the bucketed floor price (CNY fen per thousand impressions)."""


def default_data_dir() -> Path:
    """``<repo>/../shared/data``: the read-only data folder beside the checkout."""
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def data_files(scenario: str, data_dir: Path) -> list[Path]:
    """The files a replay reads; :class:`ConfigError` (exit 2) naming every missing one."""
    paths = [data_dir / name for name in FILES[scenario]]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ConfigError(f"replay {scenario!r} needs {', '.join(missing)}; "
                          "pass --data-dir pointing at the shared data folder")
    return paths


def replay_records(scenario: str, data_dir: Path) -> Iterator[tuple[str, Record]]:
    """``(topic, (key, value))`` for every event of one data set, in replay order (finite).

    Missing files raise here, before the first record is asked for (not in the producer thread).
    """
    events = ADAPTERS[scenario](data_files(scenario, data_dir))
    return _records(events, ROLE_OF[scenario])


def replay_rows(scenario: str, data_dir: Path) -> Iterator[LabelledRecord]:
    """:func:`replay_records` with each event's label as the simulated stream's truth would hold it:
    iPinYou ``click`` as the one candidate's ``click``, ULB ``Class`` as ``is_fraud``; Beauty has
    none (the next clicks are the outcome). Missing files raise here, as in :func:`replay_records`."""
    paths = data_files(scenario, data_dir)
    spec, stream = TOPICS[ROLE_OF[scenario]], STREAM_OF[scenario]
    labelled = LABELLED[scenario](paths) if scenario in LABELLED else ((e, None) for e in ADAPTERS[scenario](paths))
    return ((spec.default_topic, _record(event, spec.key_field), stream, event.model_dump(), truth)
            for event, truth in labelled)  # fmt: skip


def _records(events: Iterator[BaseModel], role: str) -> Iterator[tuple[str, Record]]:
    spec = TOPICS[role]
    for event in events:
        yield spec.default_topic, _record(event, spec.key_field)


def _record(event: BaseModel, key_field: str) -> Record:
    return str(getattr(event, key_field)).encode(), event.model_dump_json(exclude_none=True).encode()


def beauty_events(paths: list[Path]) -> Iterator[ClickEvent]:
    """Each line ``user item_1 … item_n`` becomes n ``purchase`` events of that user.

    A 5-core entry is a product review, and a review follows a purchase, hence ``purchase``.
    ``user_id``/``session_id`` are ``beauty-u<user>``/``beauty-s<user>`` (one session per
    user); ``item_id`` is the remapped item id; ``category`` is ``beauty`` (the attribute file
    has ids, not names). The file has no timestamps, only order, so the replay clock starts at
    :data:`BEAUTY_START` and advances one second per event over the whole file.
    """
    start_ms, n = int(BEAUTY_START.timestamp() * 1000), 0
    with gzip.open(paths[0], "rt", encoding="utf-8") as fh:
        for line in fh:
            user, *items = line.split()
            for item in items:
                yield ClickEvent(user_id=f"beauty-u{user}", session_id=f"beauty-s{user}", item_id=int(item),
                                 event_type="purchase", category="beauty", ts_ms=start_ms + n * BEAUTY_STEP_MS)
                n += 1


def ulb_events(paths: list[Path]) -> Iterator[Transaction]:
    """One card payment per row, in ``Time`` order (see :func:`ulb_labelled`)."""
    return (txn for txn, _ in ulb_labelled(paths))


def ulb_labelled(paths: list[Path]) -> Iterator[tuple[Transaction, dict[str, Any]]]:
    """One card payment per row, in ``Time`` order, with ``{"is_fraud": Class == 1}``.

    * ``Time`` → ``ts_ms`` (seconds after :data:`ULB_START`); ``Amount`` → ``amount`` in EUR.
    * The unnamed row index → ``txn_id`` ``ulb-<index>``.
    * ``V1`` to ``V28`` are PCA components of features that ULB anonymised; they cannot be turned
      back into the schema's fields and the closed ``Transaction`` schema has no place for
      them, so they are dropped. The cardholder identity was removed too: each row gets its
      own ``ulb-u/-c/-d<index>`` user, card and device, so velocity features see every card
      once (honest for this data, which cannot link payments).
    * Fields ULB does not have are fixed placeholders: merchant ``ulb-merchant`` of category
      ``unknown``, channel ``pos``, ``ip_country`` ``BE`` (Worldline and ULB are in Belgium; the
      cardholders are European), ``card_bin`` ``000000``.
    * The 31 rows with ``Amount`` 0 (card checks, not payments; the schema wants amount > 0)
      are skipped.
    """
    with gzip.open(paths[0], "rt", encoding="utf-8", newline="") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: float(r["Time"]))
    start_ms, skipped = int(ULB_START.timestamp() * 1000), 0
    for row in rows:
        amount, index = float(row["Amount"]), row[""]
        if amount <= 0:
            skipped += 1
            continue
        yield Transaction(
            txn_id=f"ulb-{index}", user_id=f"ulb-u{index}", card_id=f"ulb-c{index}", amount=amount,
            currency="EUR", merchant_id="ulb-merchant", merchant_category="unknown", device_id=f"ulb-d{index}",
            ip_country="BE", card_bin="000000", channel="pos", ts_ms=start_ms + round(float(row["Time"]) * 1000),
        ), {"is_fraud": row["Class"].strip() == "1"}
    logger.info("ulb replay skipped %d zero-amount rows", skipped)


def ipinyou_events(paths: list[Path]) -> Iterator[AdRequest]:
    """One ad request per impression (see :func:`ipinyou_labelled`)."""
    return (request for request, _ in ipinyou_labelled(paths))


def ipinyou_labelled(paths: list[Path]) -> Iterator[tuple[AdRequest, dict[str, Any]]]:
    """One ad request per impression, with ``{"click": [click]}``: the shown creative is the only candidate.

    * ``weekday``/``hour`` → ``hour`` and ``ts_ms`` (Beijing time, week of
      :data:`IPINYOU_SUNDAY`); rows are stably sorted by hour and spread evenly over it.
    * ``IP`` (a /24 prefix, or ``other`` for rare ones) → ``user_id`` ``ip-<prefix>``: the log
      has no user id and the prefix is the closest stand-in.
    * ``useragent`` → ``device`` (android/ios: mobile; windows/mac/linux: desktop; else other).
    * ``slotvisibility`` + size → ``slot`` (``FirstView-320x50``); ``domain`` → ``site_or_app``
      (``app`` when null: in-app inventory); ``region`` → ``user_segment`` ``region-<id>``.
    * ``advertiser``/``creative`` → the candidate (category ``app_install``: iPinYou describes
      advertiser 2997 as a mobile e-commerce app-install campaign). The log holds no per-click
      bid, so the midpoint of the bucketed floor price ``slotprice`` (CNY fen per thousand
      impressions) divided by 100 stands in.
    """
    for path in paths:
        split = path.name.split(".")[0]
        with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
            rows = list(enumerate(csv.DictReader(fh)))
        rows.sort(key=lambda pair: (int(pair[1]["weekday"]), int(pair[1]["hour"])))
        per_hour: dict[tuple[str, str], int] = {}
        for _, row in rows:
            per_hour[row["weekday"], row["hour"]] = per_hour.get((row["weekday"], row["hour"]), 0) + 1
        seen: dict[tuple[str, str], int] = {}
        for index, row in rows:
            hour_key = (row["weekday"], row["hour"])
            rank = seen[hour_key] = seen.get(hour_key, -1) + 1
            request = _ad_request(f"ipy-{split}-{index}", row, rank * 3_600_000 // per_hour[hour_key])
            yield request, {"click": [int(row["click"])]}


def _ad_request(request_id: str, row: dict[str, str], offset_ms: int) -> AdRequest:
    start = IPINYOU_SUNDAY + timedelta(days=int(row["weekday"]), hours=int(row["hour"]))
    advertiser, creative = row["advertiser"], row["creative"]
    candidate = AdCandidate(
        ad_id=f"ipy-adv{advertiser}-cr{creative}", advertiser_id=f"adv{advertiser}", category="app_install",
        creative_id=f"cr{creative}", title=f"iPinYou advertiser {advertiser} creative {creative}",
        bid=SLOTPRICE_MID.get(row["slotprice"], 0.5) / 100,
    )
    domain = row["domain"]
    return AdRequest(
        request_id=request_id, user_id="ip-" + row["IP"].removesuffix(".*"), device=_device(row["useragent"]),
        slot=f"{row['slotvisibility']}-{row['slotwidth']}x{row['slotheight']}",
        site_or_app="app" if domain in ("null", "") else domain, hour=int(row["hour"]),
        user_segment=f"region-{row['region']}", candidates=(candidate,),
        ts_ms=int(start.timestamp() * 1000) + offset_ms,
    )


def _device(useragent: str) -> Device:
    os_name = useragent.split("_", 1)[0]
    if os_name in ("android", "ios"):
        return "mobile"
    if os_name in ("windows", "mac", "linux"):
        return "desktop"
    return "other"


ADAPTERS: dict[str, Callable[[list[Path]], Iterator[BaseModel]]] = {
    "beauty": beauty_events, "ulb": ulb_events, "ipinyou": ipinyou_events, "banking77": banking77_events,
}
LABELLED: dict[str, Callable[[list[Path]], Iterator[tuple[BaseModel, dict[str, Any]]]]] = {
    "ulb": ulb_labelled, "ipinyou": ipinyou_labelled, "banking77": banking77_labelled,
}
STREAM_OF = {"beauty": "clickstream", "ulb": "payments", "ipinyou": "ads", "banking77": "support"}
"""The simulated stream each replay stands for: its outcomes are built the same way."""
