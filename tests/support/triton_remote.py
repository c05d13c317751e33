"""The test side of tritonclient_worker.py: tritonclient calls made in a child process."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from tests.support.paths import REPO
from tests.support.wire_arrays import from_array, to_array


class TritonError(Exception):
    """A call failed; ``status`` is the gRPC code name (INVALID_ARGUMENT...)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class InferAnswer:
    response: dict[str, Any]  # ModelInferResponse as protobuf JSON, raw contents removed
    outputs: dict[str, np.ndarray]


def tensor(name: str, array: np.ndarray, datatype: str = "") -> dict[str, Any]:
    """An input for TritonRemote.infer: name, data, optional datatype override."""
    return {"name": name, "array": from_array(array), "datatype": datatype}


class TritonRemote:
    """One tritonclient.grpc.InferenceServerClient, living in a child process."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.tritonclient_worker"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def _ask(self, **command: Any) -> Any:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps(command) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"tritonclient worker exited with {self._proc.wait(5)}")
        answer = json.loads(line)
        if "error" in answer:
            raise TritonError(answer["error"]["status"], answer["error"]["message"])
        return answer["ok"]

    def connect(self, target: str) -> None:
        self._ask(action="connect", target=target)

    def call(self, method: str, **kwargs: Any) -> Any:
        """e.g. call("is_model_ready", model_name="gray") or call("get_model_metadata", ...)."""
        return self._ask(action="call", method=method, kwargs=kwargs)

    def infer(self, model: str, inputs: list[dict[str, Any]], **kwargs: Any) -> InferAnswer:
        answer = self._ask(action="infer", model=model, inputs=inputs, **kwargs)
        return _answer(answer)

    def send(self, request: dict[str, Any]) -> dict[str, Any]:
        """A hand-written ModelInferRequest (protobuf JSON; bytes fields in base64)."""
        result: dict[str, Any] = self._ask(action="send", request=request)
        return result

    def stream(self, requests: list[dict[str, Any]]) -> list[InferAnswer | str]:
        """Requests as for infer (model=..., inputs=[...], request_id=...); errors as str."""
        answers = self._ask(action="stream", requests=requests)
        return [a["error"] if "error" in a else _answer(a) for a in answers]

    def shm_infer(
        self, model: str, inputs: list[dict[str, Any]], output: str, token: str
    ) -> dict[str, Any]:
        """Inputs and ``output`` through system shared memory, as Triton's examples do,
        as the app whose token is ``token``: {"status": region status JSON, "output":
        the output's entry, "array": its values}."""
        answer: dict[str, Any] = self._ask(
            action="shm_infer", model=model, inputs=inputs, output=output, token=token
        )
        answer["array"] = to_array(answer["array"])
        return answer

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)


def _answer(answer: dict[str, Any]) -> InferAnswer:
    arrays = {name: to_array(data) for name, data in answer["arrays"].items()}
    return InferAnswer(answer["response"], arrays)
