"""s4accel.sim.bench."""
