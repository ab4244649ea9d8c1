"""Sparse processing unit: tensor core, scratchpads and the sequencer that feeds them."""
