"""Serves the Data API test server on loopback for the benchmark; prints its URL, then runs
until stdin closes."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from opa_server import DataAPI  # noqa: E402

srv = DataAPI().start()
print(srv.url, flush=True)
sys.stdin.read()
srv.stop()
