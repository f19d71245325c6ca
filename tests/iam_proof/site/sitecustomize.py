"""Loaded at start-up by every Python process the test session starts (it is on their PYTHONPATH):
when the session asked for it, install the AWS call recorder before any handler code runs. The offline
stack's Lambda workers replace their environment right after start-up, so this is the moment to read it.
"""

import os

if os.environ.get("S3KP_AWS_CALL_LOG"):
    try:
        import importlib.util

        _path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "recorder.py")
        _spec = importlib.util.spec_from_file_location("s3kp_aws_call_recorder", _path)
        if _spec is not None and _spec.loader is not None:
            _recorder = importlib.util.module_from_spec(_spec)
            _spec.loader.exec_module(_recorder)
            _recorder.configure_from_environment()
    except ImportError:
        pass  # a Python without botocore (another tool's interpreter) makes no AWS calls to record
