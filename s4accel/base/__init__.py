"""s4accel.base."""
