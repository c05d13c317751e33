"""`make wheel-e2e`: the product as a user installs it, not the source tree.

What a pass proves:

1. The sdist built from the committed tree (`git archive HEAD`: no untracked file, no
   uncommitted edit) is complete: the wheel is built from it, with this interpreter's pip
   and setuptools, and holds every module of every package of the tree; nothing named
   `edge` or `inference` lands at top level.
2. `pip install -c constraints.txt '<wheel>[extra]'` works in fresh virtualenvs outside the
   tree for each extras set, [], [tools] and [cloud] (torch installed first and alone).
3. Run from a neutral temp folder (no PYTHONPATH, the repo not on sys.path; the examples it
   needs copied in), only the installed console scripts, each from its own virtualenv:
   - []: `edge-server` and `edge-client --version`; `model-tools` and `edge-orchestrator`
     fail with one clean line naming their missing extra; a real gateway on free loopback
     ports answers health, predicts digit 3, takes a staged push of a signed bundle,
     activates, rolls back (each Predict checked for the version that served it) and
     lists the model states;
   - [tools]: `model-tools` exports a torch model from a module in the current folder,
     quantizes it (static INT8 on the shipped calibration data), evaluates FP32 against
     INT8, makes a key, packages a signed bundle with golden samples and verifies it; the
     gateway (trusting that key) takes the bundle from the base venv's `edge-client`;
   - [cloud]: `edge-orchestrator` publishes a demo bundle into its default SQLite registry,
     registers the gateway, deploys the version, lists the finished rollout, and the
     gateway serves that version.

Every step is numbered and printed as it passes. A failed step is named with the command
and its output, the steps that need it are skipped and the others still run; the exit
status is 1 when any step failed. The gateway is stopped by its PID, every command has a
time limit, and the temp folder (virtualenvs included) is removed unless --keep.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from tests.installed import scenario_cloud as cloud
from tests.installed import scenario_console as console
from tests.installed import scenario_gateway as gateway
from tests.installed import scenario_tools as tools
from tests.installed import venvs
from tests.installed import wheel_build as build
from tests.installed.steps import Steps, say
from tests.installed.workspace import Workspace, copy_examples, prepare

Action = Callable[[Workspace], str]
# (title, action, the key later steps need it by, the keys it needs); run in order.
Step = tuple[str, Action, str, tuple[str, ...]]
BASE = ("venv base", "examples")
TOOLS = ("venv tools", "examples")
CLOUD_UP = ("venv cloud", "gateway")
# The rollout makes digits 2 active again after the rollback step left it ROLLED_BACK.
CLOUD_DEPLOY = ("published", "registered", "rolled back")

BUILD: list[Step] = [
    ("committed tree (git archive HEAD)", build.committed_tree, "tree", ()),
    ("sdist", build.build_sdist, "sdist", ("tree",)),
    ("wheel built from the sdist", build.build_wheel, "wheel", ("sdist",)),
    ("wheel holds every module of the tree", build.check_wheel, "", ("wheel",)),
    ("examples copied to the neutral folder", copy_examples, "examples", ("tree",)),
]
BASE_COMMANDS: list[Step] = [
    ("neutral folder: the tree is not on sys.path", venvs.check_neutral, "", BASE),
    ("edge-server/edge-client --version", gateway.versions, "", BASE),
    ("[] model-tools inspect names [tools]", gateway.inspect_needs_tools, "", BASE),
    ("[] edge-orchestrator rollouts names [cloud]", gateway.rollouts_need_cloud, "", BASE),
]
TOOLS_COMMANDS: list[Step] = [
    ("model-tools export mymodel:build", tools.export, "export", TOOLS),
    ("model-tools quantize --mode static", tools.quantize, "quantize", ("export",)),
    ("quantized model is tiny-int8", tools.int8_is_its_own_model, "", ("quantize",)),
    ("model-tools evaluate FP32 vs INT8", tools.evaluate, "", ("quantize",)),
    ("model-tools keygen", tools.keygen, "keygen", TOOLS),
    ("model-tools package --golden", tools.package, "package", ("quantize", "keygen")),
    ("model-tools verify", tools.verify, "verify", ("package",)),
    ("digits version 2 bundle", tools.digits_2, "digits-2", TOOLS),
]
GATEWAY: list[Step] = [
    ("edge-server SERVING (edge-client health)", gateway.start, "gateway", BASE),
    ("edge-client predict", gateway.predict_v1, "", ("gateway",)),
    ("edge-client push --stage (digits 2)", gateway.push_staged, "staged", ("gateway", "digits-2")),
    ("edge-client activate digits 2", gateway.activate_v2, "activated", ("staged",)),
    ("edge-client rollback digits", gateway.rollback, "rolled back", ("activated",)),
    ("edge-client models", gateway.models_listed, "", ("rolled back",)),
    ("edge-client push of the [tools] bundle", gateway.push_new_bundle, "", ("gateway", "verify")),
]
CLOUD: list[Step] = [
    ("edge-orchestrator publish", cloud.publish, "published", (*CLOUD_UP, "digits-2")),
    ("edge-orchestrator gateways register", cloud.register, "registered", CLOUD_UP),
    ("edge-orchestrator deploy digits 2", cloud.deploy, "deployed", CLOUD_DEPLOY),
    ("edge-orchestrator rollouts, rollout ID", cloud.rollout_done, "", ("deployed",)),
    ("digits 2 ACTIVE on the gateway", cloud.active_on_gateway, "", ("deployed",)),
    ("edge-orchestrator serve --http-port (console)", console.console, "", ("registered",)),
]
STOP: list[Step] = [("edge-server exits 0 on SIGTERM", gateway.stop, "", ("gateway",))]


def run_all(ws: Workspace, steps: Steps, table: list[Step]) -> None:
    for title, action, key, needs in table:
        steps.run(title, partial(action, ws), key, needs)


def install(ws: Workspace, steps: Steps) -> None:
    """The three virtualenvs are built at once; their steps report in order."""
    futures = venvs.start_all(ws) if steps.ok("wheel") else {}
    for name, extra in venvs.EXTRAS.items():
        key = f"venv {name}"
        steps.run(
            f"virtualenv [{extra}]", lambda n=name: venvs.collect(ws, n, futures[n]), key, ["wheel"]
        )
        steps.run(
            f"[{extra}] installed layout", lambda n=name: venvs.check_layout(ws.venvs[n]), "", [key]
        )


def scenario(ws: Workspace, steps: Steps) -> None:
    run_all(ws, steps, BUILD)
    install(ws, steps)
    run_all(ws, steps, BASE_COMMANDS)
    run_all(ws, steps, TOOLS_COMMANDS)
    try:
        run_all(ws, steps, GATEWAY)
        run_all(ws, steps, CLOUD)
        run_all(ws, steps, STOP)
    finally:
        if ws.gateway is not None:
            ws.gateway.kill()  # by its PID; a no-op once it has exited


def stop_on_sigterm(signum: int, frame: object) -> None:
    say("SIGTERM: stopping the gateway and removing the temp folder")
    sys.exit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args(argv)
    # A SIGTERM (a CI time-out) unwinds like an error: the gateway is stopped, the temp
    # folder removed.
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    started = time.monotonic()
    steps = Steps()
    home = Path.cwd()
    root = Path(tempfile.mkdtemp(prefix="wheel-e2e-"))
    try:
        ws = prepare(root)
        say(f"temp folder {root}; every command runs in {ws.neutral}")
        os.chdir(ws.neutral)  # every command (and the gateway) inherits the neutral folder
        scenario(ws, steps)
    finally:
        os.chdir(home)
        if args.keep:
            say(f"kept {root}")
        else:
            removing = time.monotonic()
            shutil.rmtree(root, ignore_errors=True)
            say(f"removed {root} ({time.monotonic() - removing:.1f} s)")
    elapsed = time.monotonic() - started
    counts = f"{steps.passed} passed, {len(steps.failures)} failed, {len(steps.skipped)} skipped"
    if steps.failures:
        say(f"FAILED in {elapsed:.1f} s ({counts}):")
        for failure in steps.failures:
            say(f"  {failure}")
        return 1
    say(f"PASSED in {elapsed:.1f} s ({counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
