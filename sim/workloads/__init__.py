"""s4accel.sim.workloads."""
