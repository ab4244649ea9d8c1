"""Bus signatures shared by the blocks (AXI4, AXI4-Lite)."""
