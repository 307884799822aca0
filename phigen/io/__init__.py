"""phigen.io."""
