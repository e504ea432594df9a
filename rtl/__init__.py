"""Amaranth RTL of the RSNN accelerator (see rtl/README.md and golden/network.py for the specification)."""
