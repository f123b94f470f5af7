"""One line per score in human terms, e.g. ``txn 99 → decline (velocity_1h, new_device)``."""

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
    return f"{topic}: {str(value)[:160]}"


def _describe_ctr(value: dict[str, Any]) -> str:
    candidates = value.get("candidates") or value.get("scores") or []
    if not candidates:
        return f"request {value['request_id']} → no candidates"
    best = min(candidates, key=lambda c: c.get("rank", 0))
    return (f"request {value['request_id']} → {len(candidates)} ads, best {best.get('ad_id')} "
            f"pCTR={best.get('pctr', 0):.3f}")
