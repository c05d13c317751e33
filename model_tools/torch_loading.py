"""Turning a command-line model reference into an ``nn.Module`` in eval mode.

A reference is either ``package.module:factory`` (a callable returning a module,
optionally followed by a checkpoint holding its state_dict) or the path of a
saved TorchScript file. Imports torch: only the export path uses this module.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from model_tools.errors import ToolError

__all__ = ["load_checkpoint", "load_torch_model"]

_log = logging.getLogger(__name__)
_STATE_KEYS = ("state_dict", "model_state_dict", "model")


def _import_from_cwd(module_name: str) -> ModuleType:
    """Import like ``python -m`` does: the current folder first.

    A console script's sys.path starts with its own bin folder instead, so without
    this a user's ./mypkg.py would need PYTHONPATH=.
    """
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    return importlib.import_module(module_name)


def _from_factory(reference: str, kwargs: dict[str, Any]) -> torch.nn.Module:
    module_name, _, attr = reference.partition(":")
    if not module_name or not attr:
        raise ToolError(
            f"model reference {reference!r} must be 'package.module:factory' or a TorchScript file"
        )
    try:
        module = _import_from_cwd(module_name)
    except ImportError as exc:
        raise ToolError(
            f"cannot import {module_name!r} for model {reference!r}: {exc} "
            "(searched the current folder and the installed packages)"
        ) from None
    factory = module
    for part in attr.split("."):
        factory = getattr(factory, part, None)  # type: ignore[assignment]
        if factory is None:
            raise ToolError(f"{module_name!r} has no attribute {attr!r}")
    if not callable(factory):
        raise ToolError(f"{reference!r} is not callable")
    try:
        model = factory(**kwargs)
    except Exception as exc:
        raise ToolError(f"{reference}() failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(model, torch.nn.Module):
        raise ToolError(f"{reference}() returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _from_torchscript(path: Path) -> torch.nn.Module:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated
            model: torch.nn.Module = torch.jit.load(  # type: ignore[no-untyped-call]
                str(path), map_location="cpu"
            )
    except (RuntimeError, ValueError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ToolError(f"{path} is not a TorchScript file ({first_line})") from None
    return model


def load_checkpoint(model: torch.nn.Module, checkpoint: Path) -> None:
    """Load a state_dict (plain, wrapped under a common key, or DataParallel-prefixed)."""
    if not checkpoint.is_file():
        raise ToolError(f"checkpoint not found: {checkpoint}")
    try:
        state = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ToolError(
            f"cannot read checkpoint {checkpoint}: {type(exc).__name__}: {exc}"
        ) from None
    if isinstance(state, dict):
        for key in _STATE_KEYS:
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise ToolError(f"{checkpoint} does not hold a state_dict")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ToolError(f"checkpoint {checkpoint} does not fit the model: {exc}") from None
    _log.info("loaded %d tensors from %s", len(state), checkpoint)


def load_torch_model(
    reference: str,
    checkpoint: Path | None = None,
    factory_kwargs: dict[str, Any] | None = None,
) -> torch.nn.Module:
    """Resolve ``reference`` to a module in eval mode on the CPU."""
    path = Path(reference)
    if path.suffix in (".pt", ".pth", ".ts", ".jit") or path.is_file():
        if not path.is_file():
            raise ToolError(f"TorchScript file not found: {path}")
        model = _from_torchscript(path)
    else:
        model = _from_factory(reference, factory_kwargs or {})
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    return model.eval().cpu()
