"""synthstream: Captcha styles as probabilistic programs, rendered in Numba batches, streamed on Ray.

Pipeline (data flows one way): style -> trace -> render -> batch -> stream -> train -> infer -> evaluate.
"""

__version__ = "0.1.0"

__all__ = ["load_reader", "Reader", "Reading", "Recipe", "__version__"]


def __getattr__(name: str):
    """The reader API (docs/reader.md), imported lazily so the data layer never loads torch:
    `synthstream.load_reader("wikipedia").read(["a.png"])`."""
    if name in ("load_reader", "Reader", "Reading", "Recipe"):
        import trainer.reader

        return getattr(trainer.reader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
