"""phigen.fields."""
