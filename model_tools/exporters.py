"""The two torch.onnx exporters behind one call, kept quiet, with readable errors.

``dynamo`` (torch.export based, opset >= 18) is the default; the TorchScript-based
``legacy`` exporter handles TorchScript files, older opsets and models dynamo
cannot trace. Imports torch.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

import onnx
import torch

from model_tools.errors import ToolError, error_summary

if TYPE_CHECKING:
    from model_tools.export import ExportConfig

__all__ = ["DYNAMO_MIN_OPSET", "error_summary", "quiet", "to_onnx"]

_log = logging.getLogger(__name__)
DYNAMO_MIN_OPSET = 18


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Keep the exporters' chatter off the console and in the debug log.

    On failure both exporters print graphs, from Python and from C++ (straight to
    file descriptors 1 and 2), so both are redirected at the descriptor level too.
    """
    chatter = io.StringIO()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with tempfile.TemporaryFile() as native:
        for fd in saved:
            os.dup2(native.fileno(), fd)
        try:
            with (
                warnings.catch_warnings(),
                contextlib.redirect_stdout(chatter),
                contextlib.redirect_stderr(chatter),
            ):
                warnings.simplefilter("ignore")
                yield
        finally:
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            native.seek(0)
            text = chatter.getvalue() + native.read().decode("utf-8", "replace")
            if text.strip():
                _log.debug("exporter output:\n%s", text)


def _export_dynamo(
    model: torch.nn.Module, example: torch.Tensor, config: ExportConfig
) -> onnx.ModelProto:
    dynamic = ({0: "batch"},) if config.dynamic_batch else None
    with quiet():
        program = torch.onnx.export(
            model,
            (example,),
            None,
            input_names=[config.input_name],
            output_names=list(config.output_names),
            opset_version=config.opset,
            dynamo=True,
            dynamic_shapes=dynamic,
            optimize=True,
            verbose=False,
            report=False,
        )
    if program is None:
        raise RuntimeError("exporter returned no program")
    proto: onnx.ModelProto = program.model_proto
    return proto


def _export_legacy(
    model: torch.nn.Module, example: torch.Tensor, config: ExportConfig
) -> onnx.ModelProto:
    axes = {name: {0: "batch"} for name in (config.input_name, *config.output_names)}
    buffer = io.BytesIO()
    with quiet():
        torch.onnx.export(
            model,
            (example,),
            buffer,  # type: ignore[arg-type]  # file objects work; the stub says paths
            input_names=[config.input_name],
            output_names=list(config.output_names),
            opset_version=config.opset,
            dynamo=False,
            dynamic_axes=axes if config.dynamic_batch else None,
            do_constant_folding=True,
        )
    return onnx.load_from_string(buffer.getvalue())


def to_onnx(
    model: torch.nn.Module, example: torch.Tensor, config: ExportConfig
) -> tuple[onnx.ModelProto, str]:
    scripted = isinstance(model, torch.jit.ScriptModule)
    if config.exporter == "dynamo" and scripted:
        raise ToolError("TorchScript models can only be exported with --exporter legacy")
    if config.exporter == "dynamo" or (
        config.exporter == "auto" and not scripted and config.opset >= DYNAMO_MIN_OPSET
    ):
        try:
            return _export_dynamo(model, example, config), "dynamo"
        except Exception as exc:
            if config.exporter == "dynamo":
                raise ToolError(f"export failed (dynamo exporter): {error_summary(exc)}") from None
            dynamo_error = error_summary(exc)
            _log.warning("dynamo exporter failed (%s); trying the legacy exporter", dynamo_error)
    else:
        dynamo_error = ""
    try:
        return _export_legacy(model, example, config), "legacy"
    except Exception as exc:
        detail = f"dynamo: {dynamo_error}; legacy: " if dynamo_error else ""
        raise ToolError(
            f"the model cannot be exported to ONNX ({detail}{error_summary(exc)})"
        ) from None
