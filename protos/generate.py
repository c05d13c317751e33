"""Generate the Python protobuf/gRPC code for the .proto files in this folder.

The .proto sources keep their wire names (packages ``edge.v1`` and ``inference``, files
``edge/v1/*.proto`` and ``inference/*.proto``), so stubs in any language and reflection
clients see the public contract unchanged. The *Python* code is installed under this
project's own import namespace, ``edge_contracts.proto``: a top-level ``inference`` or
``edge`` package would collide with other projects' packages of the same name. protoc
cannot prefix imports itself, so the cross-file imports it writes (``from edge.v1 import
types_pb2``) are rewritten here, in the .py and the mypy .pyi files alike.

    python protos/generate.py            # write edge_contracts/proto/
    python protos/generate.py --check    # exit 1 when the committed code differs
"""

from __future__ import annotations

import argparse
import filecmp
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = HERE.parent / "edge_contracts" / "proto"
PACKAGE = "edge_contracts.proto"
PROTO_PACKAGES = ("edge.v1", "inference")
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")

# `from edge.v1 import x_pb2` / `import edge.v1.x_pb2` at the start of a line.
_IMPORT = re.compile(
    r"^(?P<lead>\s*(?:from|import)\s+)(?P<pkg>"
    + "|".join(re.escape(p) for p in PROTO_PACKAGES)
    + r")\b",
    re.MULTILINE,
)


def proto_files() -> list[str]:
    return sorted(str(p.relative_to(HERE)) for p in HERE.rglob("*.proto"))


def rewrite_imports(text: str) -> str:
    return _IMPORT.sub(lambda m: f"{m['lead']}{PACKAGE}.{m['pkg']}", text)


def generate(out: Path) -> None:
    """Run protoc (grpcio-tools + mypy-protobuf) into *out*, then namespace the imports."""
    command = [
        sys.executable, "-m", "grpc_tools.protoc", f"-I{HERE}",
        f"--python_out={out}", f"--grpc_python_out={out}",
        f"--mypy_out={out}", f"--mypy_grpc_out={out}", *proto_files(),
    ]  # fmt: skip
    # protoc finds the mypy plugins (protoc-gen-mypy) on PATH, beside this interpreter.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(command, cwd=HERE, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"protoc failed:\n{done.stderr}")
    for path in out.rglob("*"):
        if path.name.endswith(GENERATED_SUFFIXES):
            path.write_text(rewrite_imports(path.read_text()))


def generated_files(root: Path) -> set[str]:
    return {
        str(p.relative_to(root)) for p in root.rglob("*") if p.name.endswith(GENERATED_SUFFIXES)
    }


def check(fresh: Path) -> int:
    status = 0
    wanted, committed = generated_files(fresh), generated_files(TARGET)
    for name in sorted(wanted):
        if name not in committed or not filecmp.cmp(fresh / name, TARGET / name, shallow=False):
            print(f"proto drift: edge_contracts/proto/{name} (run make proto)", file=sys.stderr)
            status = 1
    for name in sorted(committed - wanted):
        print(f"stale generated file: edge_contracts/proto/{name}", file=sys.stderr)
        status = 1
    if status == 0:
        print("proto-check: generated code matches the .proto files")
    return status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        if args.check:
            return check(fresh)
        for name in generated_files(TARGET) - generated_files(fresh):
            (TARGET / name).unlink()
        for name in sorted(generated_files(fresh)):
            (TARGET / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(fresh / name, TARGET / name)
    print(f"generated {len(generated_files(TARGET))} files in {TARGET.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
