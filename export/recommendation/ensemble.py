"""Several trained SASRec versions served as one ONNX graph: the mean of their log-probabilities.

Members trained with different losses (sampled vs full softmax) make different mistakes, and
averaging their next-item log-probabilities ranks better than either alone. Log-softmax puts
every member on the same scale whatever its loss did to the logits' offsets. The serving
contract is unchanged (``item_ids`` in, ``scores`` over every item out), so the scorer does not
know it serves an ensemble; it pays one model call per member.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn

from export.checkpoint import load_from_version
from export.recommendation.model import SASRec, SASRecConfig
from shared.errors import ModelError
from shared.models.repository import ModelRepository

logger = logging.getLogger(__name__)


class SASRecEnsemble(nn.Module):
    """Mean next-item log-probability of its members (same catalogue and ``max_len``)."""

    def __init__(self, members: Sequence[SASRec]) -> None:
        super().__init__()
        if not members:
            raise ModelError("an ensemble needs at least one member")
        first = members[0].cfg
        for member in members[1:]:
            if (member.cfg.num_items, member.cfg.max_len) != (first.num_items, first.max_len):
                raise ModelError("ensemble members must share num_items and max_len")
        self.members = nn.ModuleList(members)
        self.cfg = first
        """The first member's config: what padding and evaluation need (``max_len``, ``num_items``)."""

    def forward(self, item_ids: torch.Tensor) -> torch.Tensor:
        total = torch.stack([torch.log_softmax(member(item_ids), dim=-1) for member in self.members])
        return total.mean(dim=0)


def load_ensemble(
    repository: ModelRepository, versions: Sequence[str], attributes: dict[int, list[int]] | None
) -> SASRecEnsemble:
    """Rebuild each version's SASRec from its manifest and checksum-checked weights."""
    members = []
    for version in versions:
        extra = repository.get("recommendation", version).training.extra
        if "model" not in extra or "ensemble" in extra:
            raise ModelError(f"recommendation {version} is not a single SASRec; cannot be an ensemble member")
        member = SASRec(SASRecConfig(**extra["model"]))
        if member.cfg.num_attributes and attributes:
            member.set_attributes(attributes)
        load_from_version(member, repository, "recommendation", version)
        members.append(member.eval())
    logger.info("ensemble of recommendation versions %s", ", ".join(versions))
    return SASRecEnsemble(members)
