"""S4-open: an open-source high-sparsity AI inference accelerator.

One import root for the whole project: ``s4accel.hw`` (Amaranth gateware), ``s4accel.sim``
(golden model, cocotb testbenches, benchmarks) and ``s4accel.sw`` (sparse format, driver, CLI).
"""

__version__ = "0.1.0"
