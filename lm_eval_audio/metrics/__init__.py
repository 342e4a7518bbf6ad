"""Metrics our tasks report (WER and its normaliser)."""
