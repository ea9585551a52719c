"""Naming hints from ``[tool.trainlint]``: objects the semantic layer cannot recognise by their
constructor. A module of its own so that configuration does not import the semantic layer."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple


@dataclass
class Hints:
    """Extra names from ``[tool.trainlint]``: objects the heuristics cannot see."""

    optimizer_names: Tuple[str, ...] = ()
    scheduler_names: Tuple[str, ...] = ()
    scaler_names: Tuple[str, ...] = ()
    builder_patterns: Tuple[str, ...] = ()
