"""A sweep's population: the seeds × learning rates of one network shape laid out over the
devices and trained by ONE compiled program, composed from ``deepmle.core.member``."""
