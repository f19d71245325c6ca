"""A Roboflow-compatible keypoint inference server running MediaPipe's TFLite models on the CPU."""
