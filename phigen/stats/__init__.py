"""phigen.stats."""
