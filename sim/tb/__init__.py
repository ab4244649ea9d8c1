"""s4accel.sim.tb."""
