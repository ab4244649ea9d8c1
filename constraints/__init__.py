"""FPGA pin and timing constraints (``README.md``), installed as package data of
``s4accel.constraints`` so that ``s4 fpga build`` finds them through :mod:`importlib.resources`
in an installed wheel as in a checkout. No code."""
