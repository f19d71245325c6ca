"""What produced a result: the model and the inference settings that change its predictions.

Recorded on each result (`fingerprint`) and part of the functions' idempotency keys, so an object
version processed under one model is processed again under another (`s3kp backfill --reprocess` sends
the objects whose result carries another fingerprint). Settings that only change the drawing (skeleton,
annotated size, keypoint draw threshold) or the transport (URL, timeouts, key) are left out: they do not
change the predictions.

A video's predictions also depend on which frames are sampled, so its fingerprint adds the sampling rate
(`video_fps`). An image's has no such field, so image fingerprints are exactly those recorded before
videos had their own: changing them would send every image again on the next `--reprocess`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fractions import Fraction

FINGERPRINT_VERSION = 1
FINGERPRINT_LENGTH = 16


def inference_fingerprint(
    model_id: str,
    *,
    confidence: float,
    overlap: float,
    classes: Iterable[str] = (),
    max_side_for_inference: int,
    video_fps: float | int | str | Fraction | None = None,
) -> str:
    """16 hex characters: SHA-256 of the canonical JSON of what changes predictions.

    Numbers are written as their shortest decimal (`0.4`, never `0.40000000000000002`) and classes are
    sorted and de-duplicated, so equal settings give equal fingerprints however they were spelt. The
    sampling rate, given for a video only, is the exact fraction the sampler uses (`video_plan.exact`),
    written `5` or `1/10`: `5`, `5.0` and `"5"` sample the same frames and agree.
    """
    document: dict[str, object] = {
        "v": FINGERPRINT_VERSION,
        "model_id": model_id,
        "confidence": float(confidence),
        "overlap": float(overlap),
        "classes": sorted({name.strip() for name in classes if name.strip()}),
        "max_side_for_inference": int(max_side_for_inference),
    }
    if video_fps is not None:
        # Imported here: `fractions` costs the ingest function's cold start ~1.5 ms it has no use for.
        from s3kp_core.video_plan import exact

        document["video_fps"] = str(exact(video_fps))
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:FINGERPRINT_LENGTH]
