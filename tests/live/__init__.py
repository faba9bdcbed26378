"""Tests against the real provider APIs; each skips when its key is missing."""
