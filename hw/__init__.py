"""Amaranth gateware of the accelerator."""
