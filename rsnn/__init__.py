"""rsnn: the command-line tool of the RSNN accelerator project (see ``rsnn --help``)."""
