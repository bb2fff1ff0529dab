"""deepmle: the CS109 "simple deep network" (is this digit a 1 or a 2?) in functional JAX.

Modules, one concept each:
  types       names for the pytrees and arrays used everywhere
  model       init_params, forward (eqs. 1-2), predict_proba
  likelihood  log_likelihood (eq. 3), accuracy
  backprop    the notes' chain rule written out by hand (eqs. 4-5)
  data        the embedded MNIST 1-vs-2 set, a local mnist.npz, or TFDS
  config      TOML experiment configs, validated into frozen dataclasses
  train       training as a pure function of (key, learning rate)
  sweep       a grid of shapes x learning rates x seeds, one program per shape
  stats       means and 95% intervals over seeds
  results     run directories written atomically
  plots       figures redrawn from a run directory
  cli         the thin `deepmle` command
"""

__version__ = "0.1.0"
