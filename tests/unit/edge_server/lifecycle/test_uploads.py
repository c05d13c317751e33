"""The upload area drops partial uploads nobody touched for STALE_UPLOAD_SECONDS (at start
and when an upload begins), and counts an extraction against the quota before it writes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from edge_server.errors import QuotaExceeded
from edge_server.lifecycle.uploads import (
    INCOMING_DIR,
    STALE_UPLOAD_SECONDS,
    UploadArea,
    UploadLimits,
)

LIMITS = UploadLimits(max_bundle_bytes=1 << 20, disk_quota_bytes=100_000)
SHA = "ab" * 32


def _part(root: Path, name: str, size: int, age: float) -> Path:
    path = root / INCOMING_DIR / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(size))
    moment = time.time() - age
    os.utime(path, (moment, moment))
    return path


def test_stale_partials_are_removed_at_start_and_fresh_ones_kept(tmp_path: Path) -> None:
    old = _part(tmp_path, "gray--3--" + SHA[:32] + ".part", 60_000, STALE_UPLOAD_SECONDS + 60)
    fresh = _part(tmp_path, "gray--4--" + SHA[:32] + ".part", 1_000, 60)
    UploadArea(tmp_path, LIMITS)
    assert not old.exists()
    assert fresh.exists()  # a push after a restart resumes it


def test_a_stale_partial_no_longer_holds_the_quota(tmp_path: Path) -> None:
    area = UploadArea(tmp_path, LIMITS)
    old = _part(tmp_path, "gray--3--" + SHA[:32] + ".part", 90_000, STALE_UPLOAD_SECONDS + 1)
    upload = area.begin("other", "1", 4_000, SHA)  # 90 000 + 8 000 would exceed 100 000
    assert upload.offset == 0
    assert not old.exists()


def test_an_extraction_over_the_quota_is_refused_before_writing(tmp_path: Path) -> None:
    area = UploadArea(tmp_path, LIMITS)
    _part(tmp_path, "gray--3--" + SHA[:32] + ".part", 10_000, 0)
    area.reserve_extraction(90_000)
    with pytest.raises(QuotaExceeded, match="extracts to 90001 bytes but the model root uses"):
        area.reserve_extraction(90_001)
