"""What a trial runs inside: its session (Tune or a local folder), checkpoints, RNG state, device choice,
divergence checks, learning-rate schedules, start-up, and the standalone command line."""
