"""The base virtualenv (no extras): the console scripts' versions, clean refusals of the
extras' commands, and a real gateway driven with `edge-client` as the README does: health,
predict, push a signed bundle (staged), activate, rollback, list the models, push the
bundle the [tools] steps made."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.arm64.aarch64_env import SmokeFailure
from tests.arm64.gateway_probe import Gateway
from tests.installed.commands import call, expect, ok, ok_json, refused_without_extra, tail
from tests.installed.workspace import GATEWAY_ID, Workspace, clean_env

IMAGE = "images/digit_3_705.png"  # the README's example: class 3
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def version_line(ws: Workspace, script: str) -> str:
    out = ok([ws.venvs["base"].script(script), "--version"])
    expect(ws.version in out, f"`{script} --version` printed {out.strip()!r}, not {ws.version}")
    return out.strip()


def versions(ws: Workspace) -> str:
    return "; ".join(version_line(ws, script) for script in ("edge-server", "edge-client"))


def inspect_needs_tools(ws: Workspace) -> str:
    command = [ws.venvs["base"].script("model-tools"), "inspect", "models/digits/1/model.onnx"]
    return refused_without_extra(command, "tools")


def rollouts_need_cloud(ws: Workspace) -> str:
    return refused_without_extra(
        [ws.venvs["base"].script("edge-orchestrator"), "rollouts"], "cloud"
    )


# --- the running gateway --------------------------------------------------------------------


def start(ws: Workspace) -> str:
    """Free loopback ports (port 0: the gateway reports what it bound), the demo model root,
    the demo keys plus the key `model-tools keygen` made, a management token file."""
    keys = ",".join(["keys", *([str(ws.new_key)] if ws.new_key else [])])
    command = [ws.venvs["base"].script("edge-server"), "--model-root", "models",
               "--host", "127.0.0.1", "--grpc-port", "0", "--http-port", "0",
               "--trusted-keys", keys, "--management-token-file", "token",
               "--gateway-id", GATEWAY_ID]  # fmt: skip
    ws.gateway = Gateway(command, clean_env(), str(ws.neutral), START_TIMEOUT)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        result = call(ws.client("health", "--json"), timeout=30)
        if result.returncode == 0 and json.loads(result.stdout).get("status") == "SERVING":
            break
        if ws.gateway.proc.poll() is not None or time.monotonic() > deadline:
            raise SmokeFailure(
                f"gateway not SERVING (health: {tail(result.stdout + result.stderr, 500)}):\n"
                f"{ws.gateway.log_tail()}"
            )
        time.sleep(0.5)
    health = json.loads(result.stdout)
    served = ", ".join(f"{m['name']}:{m['active_version']}" for m in health["models"])
    return f"PID {ws.gateway.proc.pid} on {ws.target} SERVING {served}; trusts {keys}"


def predicted(ws: Workspace, model: str = "") -> dict[str, Any]:
    answer = ok_json(ws.client("predict", IMAGE, *(["--model", model] if model else []), "--json"))
    first: dict[str, Any] = answer[0]
    return first


def served_by(ws: Workspace, model: str, version: str) -> str:
    """A Predict of the sample image: class 3, answered by model:version."""
    got = predicted(ws, model)
    seen = (got["model_name"], got["model_version"], got["class_id"])
    expect(seen == (model, version, 3), f"{IMAGE}: {seen}, expected ({model!r}, {version!r}, 3)")
    return f"{IMAGE} -> class 3 ({got['confidence']:.4f}) by {model}:{version}"


def predict_v1(ws: Workspace) -> str:
    return served_by(ws, "digits", "1")


def push_staged(ws: Workspace) -> str:
    assert ws.digits_2 is not None
    result = ok_json(ws.managed("push", str(ws.digits_2), "--stage", "--json", "--quiet"))
    seen = (result["model_name"], result["model_version"], result["stage"])
    expect(seen == ("digits", "2", "STAGED"), f"push answered {result}")
    return f"digits:2 STAGED ({result['bytes_sent']} bytes sent); digits:1 still serves"


def activate_v2(ws: Workspace) -> str:
    model = ok_json(ws.managed("activate", "digits", "2", "--json"))
    expect(model["active_version"] == "2", f"after activate: {model}")
    return "activate digits 2: " + served_by(ws, "digits", "2")


def rollback(ws: Workspace) -> str:
    model = ok_json(ws.managed("rollback", "digits", "--json"))
    expect(model["active_version"] == "1", f"after rollback: {model}")
    return "rollback digits: " + served_by(ws, "digits", "1")


def version_states(ws: Workspace, name: str) -> tuple[str, dict[str, str]]:
    """(active version, {version: state}) of one model from `edge-client models --json`."""
    models = {m["name"]: m for m in ok_json(ws.managed("models", "--json"))}
    expect(name in models, f"`edge-client models` lists no {name}: {sorted(models)}")
    return models[name]["active_version"], {
        v["version"]: v["state"] for v in models[name]["versions"]
    }


def models_listed(ws: Workspace) -> str:
    active, states = version_states(ws, "digits")
    expect(active == "1" and states.get("2") == "ROLLED_BACK", f"digits: active {active}, {states}")
    table = ok(ws.managed("models"))
    expect("ROLLED_BACK" in table and "digits" in table, f"`edge-client models` printed:\n{table}")
    return f"digits active 1, versions {states}; the table shows the same"


def push_new_bundle(ws: Workspace) -> str:
    """The bundle signed by the key made in the [tools] venv, activated at once."""
    assert ws.new_bundle is not None
    name, version = ws.new_model
    result = ok_json(ws.managed("push", str(ws.new_bundle), "--json", "--quiet"))
    seen = (result["model_name"], result["model_version"], result["stage"])
    expect(seen == (name, version, "ACTIVE"), f"push answered {result}")
    return f"{name}:{version} ACTIVE; " + served_by(ws, name, version)


def stop(ws: Workspace) -> str:
    code = ws.gateway.stop(STOP_TIMEOUT)
    expect(code == 0, f"gateway exited {code} after SIGTERM:\n{ws.gateway.log_tail()}")
    return f"SIGTERM to PID {ws.gateway.proc.pid}: exited 0"
