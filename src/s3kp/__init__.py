"""s3-keypoints local tooling: the `s3kp` CLI, the local inference server and the offline stack.

None of this ships in the Lambda packages; the Lambda code lives in `s3kp_core` (the shared layer)
and `functions/`.
"""

__version__ = "0.1.0"
