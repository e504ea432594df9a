"""cocotb testbenches of the accelerator and the runner that builds and runs them on Icarus and Verilator."""
