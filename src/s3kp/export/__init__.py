"""`s3kp export`: the results of the API as COCO keypoints, CSV (one row per keypoint) or JSONL.

formats.py  the three writers (streaming: one result in, its lines out)
run.py      pages through the API, fetches details in parallel, writes atomically, shows progress
"""
