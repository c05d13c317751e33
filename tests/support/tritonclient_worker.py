"""tritonclient in a process of its own, driven by JSON lines on stdin (tests only).

Why a separate process: tritonclient's generated ``grpc_service.proto`` defines the
same ``inference.*`` symbols as the gateway's ``protos/inference`` in protobuf's
process-wide descriptor pool, and protobuf refuses a duplicate symbol ("Couldn't
build proto file into descriptor pool: duplicate symbol 'inference...'"). The test
process loads the gateway, so the client lives here.

Protocol: one JSON object per line in, one per line out: ``{"ok": result}`` or
``{"error": {"status": "INVALID_ARGUMENT", "message": "..."}}``; arrays travel
in the JSON form of tests/support/wire_arrays.py.
"""

from __future__ import annotations

import json
import sys
import threading
import traceback
from typing import Any

import grpc
import tritonclient.grpc as triton
from google.protobuf import json_format
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import (
    InferenceServerException,
    np_to_triton_dtype,
    triton_to_np_dtype,
)

from tests.support.wire_arrays import from_array, to_array


class Session:
    def __init__(self) -> None:
        self.client: triton.InferenceServerClient | None = None
        self.channel: grpc.Channel | None = None
        self.stub: service_pb2_grpc.GRPCInferenceServiceStub | None = None

    def connect(self, target: str) -> None:
        self.close()
        self.client = triton.InferenceServerClient(target)
        self.channel = grpc.insecure_channel(target)
        self.stub = service_pb2_grpc.GRPCInferenceServiceStub(self.channel)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.channel is not None:
            self.channel.close()

    def call(self, method: str, kwargs: dict[str, Any]) -> Any:
        """Any InferenceServerClient method with JSON-able arguments and result."""
        assert self.client is not None
        if "files" in kwargs:  # load_model's file contents are bytes; JSON carries text
            kwargs["files"] = {path: text.encode() for path, text in kwargs["files"].items()}
        return getattr(self.client, method)(**kwargs)

    @staticmethod
    def _inputs(inputs: list[dict[str, Any]]) -> list[triton.InferInput]:
        built = []
        for item in inputs:
            array = to_array(item["array"])
            datatype = item.get("datatype") or np_to_triton_dtype(array.dtype)
            infer_input = triton.InferInput(item["name"], list(array.shape), datatype)
            built.append(infer_input.set_data_from_numpy(array))
        return built

    @staticmethod
    def _result(result: triton.InferResult) -> dict[str, Any]:
        response = result.get_response(as_json=True)
        response.pop("raw_output_contents", None)
        arrays = {o["name"]: from_array(result.as_numpy(o["name"])) for o in response["outputs"]}
        return {"response": response, "arrays": arrays}

    def infer(self, model: str, inputs: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
        """client.infer with raw inputs (tritonclient always sends raw_input_contents)."""
        assert self.client is not None
        outputs = kwargs.pop("outputs", None)
        if outputs is not None:
            kwargs["outputs"] = [triton.InferRequestedOutput(name) for name in outputs]
        return self._result(self.client.infer(model, self._inputs(inputs), **kwargs))

    def send(self, request: dict[str, Any]) -> dict[str, Any]:
        """A ModelInferRequest written as protobuf JSON, through tritonclient's stub."""
        assert self.stub is not None
        message = json_format.ParseDict(request, service_pb2.ModelInferRequest())
        response = self.stub.ModelInfer(message, timeout=30)
        return json_format.MessageToDict(response, preserving_proto_field_name=True)

    def shm_infer(
        self, model: str, inputs: list[dict[str, Any]], output: str, token: str
    ) -> dict[str, Any]:
        """Triton's system shared-memory recipe, step by step as its examples do it:
        every input in one region, ``output`` written into another, then read back;
        every call carries the app's ``token`` (docs/kserve-v2.md)."""
        import uuid

        import tritonclient.utils.shared_memory as shm

        assert self.client is not None
        arrays = [to_array(item["array"]) for item in inputs]
        in_size = sum(array.nbytes for array in arrays)
        tag = uuid.uuid4().hex[:10]
        headers = {"authorization": f"Bearer {token}"}
        source = shm.create_shared_memory_region("inputs", f"/edge-tc-in-{tag}", in_size)
        sink = shm.create_shared_memory_region("result", f"/edge-tc-out-{tag}", 4096)
        try:
            shm.set_shared_memory_region(source, arrays)
            register = self.client.register_system_shared_memory
            register("inputs", f"/edge-tc-in-{tag}", in_size, headers=headers)
            register("result", f"/edge-tc-out-{tag}", 4096, headers=headers)
            status = self.client.get_system_shared_memory_status(as_json=True, headers=headers)
            infer_inputs, offset = [], 0
            for item, array in zip(inputs, arrays, strict=True):
                datatype = np_to_triton_dtype(array.dtype)
                infer_input = triton.InferInput(item["name"], list(array.shape), datatype)
                infer_input.set_shared_memory("inputs", array.nbytes, offset)
                infer_inputs.append(infer_input)
                offset += array.nbytes
            requested = triton.InferRequestedOutput(output)
            requested.set_shared_memory("result", 4096)
            result = self.client.infer(model, infer_inputs, outputs=[requested], headers=headers)
            # get_output(as_json=True) returns None in tritonclient 2.69 (no return).
            entry = json_format.MessageToDict(
                result.get_output(output), preserving_proto_field_name=True
            )
            values = shm.get_contents_as_numpy(
                sink, triton_to_np_dtype(entry["datatype"]), [int(d) for d in entry["shape"]]
            )
            return {"status": status, "output": entry, "array": from_array(values)}
        finally:
            try:
                self.client.unregister_system_shared_memory(headers=headers)
            finally:  # a refused credential must not leave the objects behind
                shm.destroy_shared_memory_region(source)
                shm.destroy_shared_memory_region(sink)

    def stream(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send every request on one ModelStreamInfer stream; answers in arrival order."""
        assert self.client is not None
        answers: list[dict[str, Any]] = []
        done = threading.Event()

        def on_answer(result: triton.InferResult | None, error: Exception | None) -> None:
            if error is not None:
                answers.append({"error": str(error)})
            else:
                assert result is not None
                answers.append(self._result(result))
            if len(answers) == len(requests):
                done.set()

        self.client.start_stream(on_answer)
        try:
            for request in requests:
                inputs = self._inputs(request.pop("inputs"))
                self.client.async_stream_infer(request.pop("model"), inputs, **request)
            if not done.wait(30):
                raise TimeoutError(f"{len(answers)} of {len(requests)} stream answers arrived")
        finally:
            self.client.stop_stream()
        return answers


def handle(session: Session, command: dict[str, Any]) -> Any:
    action = command.pop("action")
    if action == "connect":
        return session.connect(command["target"])
    if action == "call":
        return session.call(command["method"], command.get("kwargs", {}))
    if action == "infer":
        return session.infer(command.pop("model"), command.pop("inputs"), **command)
    if action == "send":
        return session.send(command["request"])
    if action == "stream":
        return session.stream(command["requests"])
    if action == "shm_infer":
        return session.shm_infer(
            command["model"], command["inputs"], command["output"], command["token"]
        )
    raise ValueError(f"unknown action {action!r}")


def main() -> None:
    session = Session()
    for line in sys.stdin:
        try:
            answer: dict[str, Any] = {"ok": handle(session, json.loads(line))}
        except InferenceServerException as exc:
            status = str(exc.status() or "").removeprefix("StatusCode.")
            answer = {"error": {"status": status, "message": exc.message()}}
        except grpc.RpcError as exc:
            answer = {"error": {"status": exc.code().name, "message": exc.details()}}
        except Exception:  # a bug in the test or the worker: show it in the test's failure
            answer = {"error": {"status": "WORKER", "message": traceback.format_exc()}}
        print(json.dumps(answer), flush=True)
    session.close()


if __name__ == "__main__":
    main()
