"""Sparse tensor core: lane -> array -> tensor core, and the requantizer."""
