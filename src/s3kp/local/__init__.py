"""The offline stack: moto server as AWS, the local inference server, a queue runner and the HTTP API."""
