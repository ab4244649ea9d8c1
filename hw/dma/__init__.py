"""DMA: the AXI4 manager that moves 2-D strided regions between DRAM and the accelerator."""
