"""s3kp_core: the domain code shared by the Lambda functions (the shared layer's package).

Plain, typed Python with no AWS event shapes: imaging, the inference client, annotation, the results
model and store. Handlers in `functions/` parse events and call into this package.
"""

__version__ = "0.1.0"
