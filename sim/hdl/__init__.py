"""Simulation-only gateware: the DRAM model and the simulation top level around the
accelerator (built by the cocotb runner as design ``s4_sim``)."""
