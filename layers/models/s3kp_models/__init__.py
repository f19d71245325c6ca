"""The built-in keypoint models and the Roboflow-compatible answer to one request, transport-free.

Shipped as the models layer of the InferenceFunction (`InferenceBackend=builtin`) and imported by the
local inference server (`s3kp model-server`): one implementation of the models for both. It depends on
`s3kp_core` (the domain's prediction types, image decoding, drawing), numpy and LiteRT; never on the dev
tooling in `src/s3kp`.
"""
