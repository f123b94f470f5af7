"""One line per score in human terms, e.g. ``txn 99 → decline (velocity_1h, new_device)`` or
``customer c0123: 'my card payment was declined twice' → declined_card_payment (0.94) → payments queue``."""

from __future__ import annotations

from typing import Any


def describe_record(topic: str, value: dict[str, Any]) -> str:
    if "items" in value and "user_id" in value:
        items = value.get("items") or []
        top = ", ".join(str(i.get("item_id")) for i in items[:3])
        return f"user {value['user_id']} → {len(items)} items ({top}{', …' if len(items) > 3 else ''})"
    if "decision" in value and "txn_id" in value:
        reasons = ", ".join(value.get("reasons") or []) or "no flags"
        return f"txn {value['txn_id']} → {value['decision']} p={value.get('probability', 0):.2f} ({reasons})"
    if "recommended_price" in value:
        bound = ", ".join(value.get("bound_by") or []) or "unconstrained"
        return (f"SKU {value.get('sku')} → {value['recommended_price']:.2f} "
                f"(was {value.get('current_price', 0):.2f}, {bound})")
    if "units_next_period" in value:
        return f"SKU {value.get('sku')} forecast {value['units_next_period']:.1f} units"
    if "request_id" in value:
        return _describe_ctr(value)
    if "intent" in value and "queue" in value and "customer_id" in value:
        return _describe_support(value)
    return f"{topic}: {str(value)[:160]}"


def _describe_ctr(value: dict[str, Any]) -> str:
    candidates = value.get("candidates") or value.get("scores") or []
    if not candidates:
        return f"request {value['request_id']} → no candidates"
    best = min(candidates, key=lambda c: c.get("rank", 0))
    return (f"request {value['request_id']} → {len(candidates)} ads, best {best.get('ad_id')} "
            f"pCTR={best.get('pctr', 0):.3f}")


TEXT_CHARS = 60


def _describe_support(value: dict[str, Any]) -> str:
    """An intent (or an escalation); the message's text when the record was joined with it (the
    demo's tap does: the output carries the message id, not the customer's words)."""
    text = " ".join(str(value.get("text") or "").split())
    said = f" '{text[:TEXT_CHARS]}{'…' if len(text) > TEXT_CHARS else ''}'" if text else f" {value.get('message_id')}"
    line = (f"customer {value['customer_id']}:{said} → {value['intent']} ({value.get('probability', 0):.2f}) "
            f"→ {value['queue']} queue")
    reasons = value.get("escalation_reasons") or value.get("reasons") or []
    return f"{line}, escalated ({', '.join(reasons)})" if reasons else line
