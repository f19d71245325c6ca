"""`s3kp view`: the results in a browser (server.py forwards to the API; static/ is the page)."""
