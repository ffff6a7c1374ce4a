"""jaxfer: facial-expression recognition that learns from unlabeled faces."""

__version__ = "0.1.0"
