"""Rejection reasons as the person who pushed a bundle should read them.

The bundle, manifest and ONNX Runtime layers name the files they opened. On the
gateway those are internal: the upload's ``.incoming/*.part`` file and the hidden
``.staging-*`` folder the bundle is extracted into. A reason names what was sent
instead: "bundle gray:3", or "gray:3/model.onnx" for a file inside it.
"""

from __future__ import annotations

import re
from pathlib import Path


def public_reason(message: str, label: str, bundle: Path, staging: Path, root: Path) -> str:
    """``message`` with every path under the model ``root`` replaced by ``label``
    (``model:version``): the upload file reads "bundle <label>", the staging folder
    "<label>", and anything else there (an extraction's temporary folder) "<label>" too."""
    text = message.replace(str(bundle), f"bundle {label}").replace(str(staging), label)
    return re.sub(re.escape(str(root)) + r"""[^\s:'"]*""", label, text)
