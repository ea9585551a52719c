"""The rule catalogue: one module per rule (installed as ``trainlint.rules``).

Each rule is a :class:`trainlint.rule.Rule` subclass: code, name, severity, a docstring that
``trainlint explain`` prints, VALID/INVALID examples the test suite runs, and a ``check`` over the
facts of :mod:`trainlint.semantics`.
"""
