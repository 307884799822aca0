"""phigen.samplers."""
