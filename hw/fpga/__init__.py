"""FPGA builds of the accelerator: board wrappers (:mod:`.boards`) and the YoWASP
synthesis / place-and-route flow (:mod:`.build`)."""
