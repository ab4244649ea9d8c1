"""FPGA builds of the accelerator: board wrappers (:mod:`.boards`), the UART host bridge
(:mod:`.uart`) and the YoWASP synthesis / place-and-route flow (:mod:`.build`)."""
