"""The README's ``deepmle.backprop``: the chain rule of eqs. 4-5 by hand, at home in
``deepmle.core.backprop``."""

from deepmle.core.backprop import closed_form_grad, literal_output_delta

__all__ = ["closed_form_grad", "literal_output_delta"]
