"""Tensor signatures and dtype names shared by the engine, the wire and the manifest."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# ONNX Runtime's NodeArg.type strings -> numpy dtype names.
_ONNX_TO_NUMPY = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(uint16)": "uint16",
    "tensor(int32)": "int32",
    "tensor(uint32)": "uint32",
    "tensor(int64)": "int64",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
    "tensor(string)": "object",
}


def numpy_dtype_for_onnx(onnx_type: str) -> str:
    """Numpy dtype name of an ONNX Runtime type string; unknown types keep their ONNX name."""
    return _ONNX_TO_NUMPY.get(onnx_type, onnx_type)


@dataclass(frozen=True)
class TensorSpec:
    """Name, numpy dtype name and shape of a model input or output (-1 = dynamic axis)."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def has_dynamic_batch(self) -> bool:
        return bool(self.shape) and self.shape[0] == -1

    def accepts_shape(self, shape: tuple[int, ...]) -> bool:
        if len(shape) != len(self.shape):
            return False
        return all(want in (-1, got) for want, got in zip(self.shape, shape, strict=True))

    def describe(self) -> str:
        dims = ", ".join("?" if d == -1 else str(d) for d in self.shape)
        return f"{self.name}: {self.dtype}[{dims}]"


def element_size(dtype: str) -> int:
    return int(np.dtype(dtype).itemsize)
