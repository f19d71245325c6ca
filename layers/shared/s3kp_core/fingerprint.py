"""What produced a result: the model and the inference settings that change its predictions.

Recorded on each result (`fingerprint`) and part of the ingest function's idempotency key, so an object
version processed under one model is processed again under another (`s3kp backfill --reprocess` sends
the objects whose result carries another fingerprint). Settings that only change the drawing (skeleton,
annotated size, keypoint draw threshold) or the transport (URL, timeouts, key) are left out: they do not
change the predictions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

FINGERPRINT_VERSION = 1
FINGERPRINT_LENGTH = 16


def inference_fingerprint(
    model_id: str,
    *,
    confidence: float,
    overlap: float,
    classes: Iterable[str] = (),
    max_side_for_inference: int,
) -> str:
    """16 hex characters: SHA-256 of the canonical JSON of what changes predictions.

    Numbers are written as their shortest decimal (`0.4`, never `0.40000000000000002`) and classes are
    sorted and de-duplicated, so equal settings give equal fingerprints however they were spelt.
    """
    canonical = json.dumps(
        {
            "v": FINGERPRINT_VERSION,
            "model_id": model_id,
            "confidence": float(confidence),
            "overlap": float(overlap),
            "classes": sorted({name.strip() for name in classes if name.strip()}),
            "max_side_for_inference": int(max_side_for_inference),
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:FINGERPRINT_LENGTH]
