"""deepmle: the CS109 "simple deep network" (is this digit a 1 or a 2?) in functional JAX.

Modules, one concept each:
  types        names for the pytrees and arrays used everywhere
  model        init_params, forward (eqs. 1-2), predict_proba
  likelihood   log_likelihood (eq. 3), accuracy
  backprop     the notes' chain rule written out by hand (eqs. 4-5)
  checks       argument checks of the public functions
  registry     activations and optimizers by name, resolved once
  data         the embedded MNIST 1-vs-2 set, a local mnist.npz, or TFDS
  config       TOML experiment configs, validated into frozen dataclasses
  randomness   per-seed numpy streams for initial weights and minibatch orders
  train        THE definition of training, for one network; make_train
  programs     how members map onto devices, and the one compiled program per shape
  store        the run directory: atomic files, lock, overwrite, verified group files
  sweep        running a config: programs, store and progress together
  results      the results model and load_run
  report       summaries over seeds, selection on validation, the table, the CSV files
  stats        means and 95% intervals over seeds
  plots        figures redrawn from a run's results
  tensorboard  TensorBoard event files of a run
  progress     the progress display
  runtime      process-wide JAX setup for the command line
  cli          the thin `deepmle` command
"""

__version__ = "0.2.0"
