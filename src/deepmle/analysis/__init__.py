"""The read side of a run: loading it back, the report and its statistics, the files it is
written out as, plots and TensorBoard."""
