"""trainlint: a linter for PyTorch training code that catches silent training bugs."""
__version__ = "0.1.0"
