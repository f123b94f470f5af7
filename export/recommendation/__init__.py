"""Recommendation model: data, SASRec, training, evaluation and the export recipe."""
