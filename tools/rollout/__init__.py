"""Promotion, rollback and rollout plans: the operator's side of ``shared.runtime.rollout``."""
