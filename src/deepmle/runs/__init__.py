"""The run directory: the results types and their on-disk codec (``results``), and the
store that writes and verifies it (``store``)."""
