"""MediaPipe keypoint pipelines (pre-processing, TFLite inference, post-processing) in numpy."""
