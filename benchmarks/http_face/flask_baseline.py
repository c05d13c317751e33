"""The reference design's own server shape, the HTTP baseline of `make bench`.

    python -m benchmarks.http_face.flask_baseline --model-dir DIR [--port 0]

A Flask app (Werkzeug's threaded server, what ``app.run(threaded=True)`` starts) running the same
ONNX file: ``POST /predict`` takes the multipart ``image`` field, preprocesses with PIL
(``Image.open(...).convert(mode).resize(size)``, ``/255``, the manifest's mean and std,
NCHW), runs one ``session.run`` at batch 1 and answers JSON with the top class. The
mode is the model's own ("RGB" for MobileNetV2, "L" for the digits CNN, which has one
input channel). Prints ``listening: PORT`` once bound. Bench-only: the gateway never
imports Flask.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from flask import Flask, jsonify, request
from PIL import Image
from werkzeug.serving import make_server

from benchmarks.pipeline_limit import Recipe


def create_app(model_dir: Path) -> Flask:
    recipe = Recipe.for_model(model_dir)  # the manifest's size, mode, mean and std
    mean = recipe.mean.reshape(-1, 1, 1)
    std = recipe.std.reshape(-1, 1, 1)
    session = ort.InferenceSession(
        str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    input_name = session.get_inputs()[0].name
    manifest = json.loads((model_dir / "manifest.json").read_text())
    labels = manifest.get("labels") or []
    app = Flask(__name__)

    @app.post("/predict")
    def predict() -> Any:
        upload = request.files.get("image")
        if upload is None:
            return jsonify(error="send the picture as the multipart field 'image'"), 400
        image = Image.open(io.BytesIO(upload.read())).convert(recipe.color_mode)
        pixels = np.asarray(image.resize((recipe.width, recipe.height)), np.float32) / 255.0
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        tensor = ((pixels.transpose(2, 0, 1) - mean) / std)[None].astype(np.float32)
        scores = session.run(None, {input_name: tensor})[0][0]
        top = int(np.argmax(scores))
        return jsonify(class_id=top, label=labels[top] if top < len(labels) else str(top))

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    # What `app.run(threaded=True)` starts, bound first so the port can be printed.
    server = make_server("127.0.0.1", args.port, create_app(args.model_dir), threaded=True)
    print(f"listening: {server.server_port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
