"""s4accel.sim.model."""
