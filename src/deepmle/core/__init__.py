"""Pure JAX for ONE network, importing nothing else of deepmle: types, checks, the registry
of activations and optimizers, the model (eqs. 1-2), the likelihood (eq. 3), backprop by hand
(eqs. 4-5) and ``member``, the one definition of training."""
