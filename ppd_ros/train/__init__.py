"""Training of the embedded small models on synthetic data (deterministic, resumable)."""
