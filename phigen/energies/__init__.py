"""phigen.energies."""
