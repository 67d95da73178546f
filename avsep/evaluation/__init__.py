"""Scoring: BSS Eval metrics, inference with trained models, non-learned baselines, oracle masks."""
