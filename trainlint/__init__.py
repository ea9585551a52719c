"""trainlint: a linter for PyTorch training code that catches silent training bugs."""
__version__ = "0.1.0"
HOMEPAGE = "https://github.com/trainlint/trainlint"


def rule_url(code: str) -> str:
    """Where a rule's documentation page lives (docs/rules/CODE.md, made by `trainlint explain`)."""
    return f"{HOMEPAGE}/blob/main/docs/rules/{code}.md"
