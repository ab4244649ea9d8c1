"""The vector unit (issue 22): softmax, LayerNorm, GELU, residual additions, element-wise
products and row reductions, bit-exact with :mod:`s4accel.base.vector`."""
