"""synthstream: Captcha styles as probabilistic programs, rendered in Numba batches, streamed on Ray.

Pipeline (data flows one way): style -> trace -> render -> batch -> stream -> train -> infer -> evaluate.
"""

__version__ = "0.1.0"

__all__ = ["load_reader", "Reader", "Reading", "__version__"]


def __getattr__(name: str):
    """The reader API, imported lazily so the data layer never loads torch: `synthstream.load_reader(...)`."""
    if name in ("load_reader", "Reader", "Reading"):
        import trainer.reader

        return getattr(trainer.reader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
