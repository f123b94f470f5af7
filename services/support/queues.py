"""Which queue of people takes an intent: a map in settings, overridable on the config topic.

The default map covers the 77 BANKING77 intents explicitly (a model with other labels routes its
unknown intents to the default queue). At run time an operator publishes, on the service's
compacted config topic, key ``queues``::

    {"map": {"card_swallowed": "cash", "terminate_account": "retention"}, "default": "general"}

The record's ``map`` entries replace those of the settings map (the others stay), ``default``
replaces the default queue; a tombstone returns to settings. A record that does not validate is
ignored with a warning and the last good routing stays, so a typo cannot reroute everything.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from shared.runtime.config import ConfigSource

logger = logging.getLogger(__name__)

QUEUES_KEY = "queues"
DEFAULT_QUEUE = "general"

_BY_QUEUE: dict[str, tuple[str, ...]] = {
    "cards": (
        "activate_my_card", "apple_pay_or_google_pay", "card_about_to_expire", "card_acceptance", "card_arrival",
        "card_delivery_estimate", "card_linking", "card_not_working", "card_swallowed", "change_pin",
        "contactless_not_working", "disposable_card_limits", "get_disposable_virtual_card", "get_physical_card",
        "getting_spare_card", "getting_virtual_card", "order_physical_card", "pin_blocked",
        "supported_cards_and_currencies", "virtual_card_not_working", "visa_or_mastercard",
    ),
    "security": (
        "card_payment_not_recognised", "cash_withdrawal_not_recognised", "compromised_card",
        "direct_debit_payment_not_recognised", "lost_or_stolen_card", "lost_or_stolen_phone", "passcode_forgotten",
    ),
    "payments": (
        "Refund_not_showing_up", "card_payment_fee_charged", "card_payment_wrong_exchange_rate",
        "declined_card_payment", "extra_charge_on_statement", "pending_card_payment", "request_refund",
        "reverted_card_payment?", "transaction_charged_twice",
    ),
    "transfers": (
        "balance_not_updated_after_bank_transfer", "beneficiary_not_allowed", "cancel_transfer", "declined_transfer",
        "failed_transfer", "pending_transfer", "receiving_money", "transfer_fee_charged", "transfer_into_account",
        "transfer_not_received_by_recipient", "transfer_timing",
    ),
    "top_up": (
        "automatic_top_up", "balance_not_updated_after_cheque_or_cash_deposit", "pending_top_up",
        "top_up_by_bank_transfer_charge", "top_up_by_card_charge", "top_up_by_cash_or_cheque", "top_up_failed",
        "top_up_limits", "top_up_reverted", "topping_up_by_card", "verify_top_up",
    ),
    "cash": (
        "atm_support", "cash_withdrawal_charge", "declined_cash_withdrawal", "pending_cash_withdrawal",
        "wrong_amount_of_cash_received", "wrong_exchange_rate_for_cash_withdrawal",
    ),
    "exchange": ("exchange_charge", "exchange_rate", "exchange_via_app", "fiat_currency_support"),
    "account": (
        "age_limit", "country_support", "edit_personal_details", "terminate_account", "unable_to_verify_identity",
        "verify_my_identity", "verify_source_of_funds", "why_verify_identity",
    ),
}  # fmt: skip
DEFAULT_QUEUES: dict[str, str] = {intent: queue for queue, intents in _BY_QUEUE.items() for intent in intents}
"""The 77 BANKING77 intents → eight queues: ``cards`` (getting, using and replacing cards),
``security`` (lost, stolen, compromised, unrecognised charges), ``payments`` (card payments, fees,
refunds), ``transfers``, ``top_up``, ``cash`` (ATMs), ``exchange`` (currencies) and ``account``
(identity, personal details, closing)."""

QueueName = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class QueueOverride(BaseModel):
    """The config topic's ``queues`` record."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    map: dict[str, QueueName] = {}
    default: QueueName | None = None


class QueueRouter:
    """Intent → queue, from settings and the config topic's ``queues`` key (read per batch)."""

    def __init__(self, queues: Mapping[str, str], default: str, config: ConfigSource) -> None:
        self._settings = (dict(queues), default)
        self._config = config
        self._seen: Any = None
        """The config value the routing below was built from (compared by identity: cheap per batch)."""
        self._routing = self._settings
        self._tables: dict[tuple[str, ...], np.ndarray] = {}

    def routing(self) -> tuple[dict[str, str], str]:
        """The map and default queue in force now."""
        value = self._config.get(QUEUES_KEY)
        if value is not self._seen:
            self._seen = value
            self._routing = self._merged(value)
            self._tables.clear()
        return self._routing

    def table(self, labels: Sequence[str]) -> np.ndarray:
        """Queue name per label index of a model (an object array, indexed by the argmax)."""
        queues, default = self.routing()
        key = tuple(labels)
        if key not in self._tables:
            self._tables = {key: np.array([queues.get(label, default) for label in labels], dtype=object)}
        return self._tables[key]

    def queue_of(self, intent: str) -> str:
        queues, default = self.routing()
        return queues.get(intent, default)

    def _merged(self, value: dict[str, Any] | None) -> tuple[dict[str, str], str]:
        queues, default = self._settings
        if value is None:
            return self._settings
        try:
            override = QueueOverride.model_validate(value)
        except ValidationError as exc:
            logger.warning("config key %r ignored (keeping the routing in force): %s", QUEUES_KEY, exc)
            return self._routing
        logger.info("routing from the config topic: %d intents overridden, default queue %s",
                    len(override.map), override.default or default)
        return {**queues, **override.map}, override.default or default
