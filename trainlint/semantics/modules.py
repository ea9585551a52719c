"""Module classes of a file (nn.Module subclasses) and how layers are built."""
from __future__ import annotations

import ast
from typing import Optional

from .model import FileFacts
from .syntax import dotted, last_part

_WRAPPERS = {"ModuleList", "ModuleDict", "Sequential", "ParameterList", "ParameterDict"}



def module_classes(facts: FileFacts) -> dict:
    """Classes of this file that are ``nn.Module`` subclasses (directly, through other local
    classes, or LightningModule), with their methods."""
    modules = set()
    changed = True
    while changed:
        changed = False
        for cls, bases in facts.class_bases.items():
            if cls not in modules and any(
                    b in ("torch.nn.Module", "torch.nn.modules.module.Module") or last_part(b) in (
                        "LightningModule", "Module") and b.startswith(("torch", "lightning", "pytorch_lightning"))
                    or b in modules for b in bases):
                modules.add(cls)
                changed = True
    return {cls: [fn for fn in facts.functions if fn.class_name == cls and fn.parent is None] for cls in modules}



def module_constructor(facts: FileFacts, value: ast.AST) -> Optional[str]:
    """"wrapper" for nn.ModuleList/ModuleDict/Sequential(...), "layer" for a call building a layer
    (``nn.Linear(...)`` or a module class of this file), else None."""
    if not isinstance(value, ast.Call):
        return None
    callee = facts.qualify(dotted(value.func) or "")
    leaf = last_part(callee)
    if callee.startswith("torch.nn.") and leaf in _WRAPPERS:
        return "wrapper"
    if callee.startswith("torch.nn.") and leaf[:1].isupper() and leaf not in ("Parameter", "Identity"):
        return "layer"
    return "layer" if callee in module_classes_cached(facts) else None



def module_classes_cached(facts: FileFacts) -> set:
    cached = facts.role_cache.get("module-classes")
    if cached is None:
        cached = facts.role_cache["module-classes"] = set(module_classes(facts))
    return cached



def torch_nn_prefix(facts: FileFacts) -> Optional[str]:
    """How this file spells ``torch.nn`` (``nn``, ``torch.nn``), for fixes."""
    for local, qualified in facts.imports.items():
        if qualified == "torch.nn":
            return local
    return "torch.nn" if facts.imports.get("torch") == "torch" else None
