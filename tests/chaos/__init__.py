"""Chaos tests of the two-tier session store (marker ``chaos``, off by default)."""
