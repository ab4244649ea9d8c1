"""The simulation top level ``vector_unit``: :class:`~s4accel.hw.vector.unit.VectorUnit` with
its ports at the top (the cocotb testbench :mod:`s4accel.sim.tb.vector` drives them).

The unit takes its lane count from the configuration's bank width and a row buffer of
:data:`MAX_ROW` elements (the longest sequence MiniLM runs); until the unit joins the SPU the
configuration otherwise names only the build directory.
"""

from ...base.config import Config
from ...hw.vector.unit import VectorUnit

__all__ = ["MAX_ROW", "vector_unit"]

#: Row buffer of the simulated unit, in elements.
MAX_ROW = 128


def vector_unit(config: Config) -> VectorUnit:
    """The vector unit built for ``config``."""
    return VectorUnit(lanes=config.bank, max_row=MAX_ROW)
