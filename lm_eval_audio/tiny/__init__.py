"""Builders of random tiny checkpoints (every supported architecture, Whisper), offline and
deterministic, for tests, the demo and benchmarks. The model layer never imports this package."""
