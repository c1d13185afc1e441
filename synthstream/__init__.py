"""synthstream: Captcha styles as probabilistic programs, rendered in Numba batches, streamed on Ray.

Pipeline (data flows one way): style -> trace -> render -> batch -> stream -> train -> infer -> evaluate.
"""

__version__ = "0.1.0"
