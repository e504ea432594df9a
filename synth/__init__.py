"""Synthesis of the accelerator with Yosys: cell counts, transistors, sky130 area, iCE40 resources."""
