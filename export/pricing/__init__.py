"""Pricing demand model: data, training, evaluation and the export recipe."""
