"""Simulation: golden model, cocotb testbenches, simulator runners, benchmarks."""
