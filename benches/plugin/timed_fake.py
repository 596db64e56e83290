#!/usr/bin/env python3
"""tests/e2e/fake_openai.py, plus one JSON line per model request in $FAKE_TIMES: when the
request arrived and when its answer was sent (wall clock, seconds). turn-bench.sh reads it."""
import json
import os
import sys
import time
from http.server import ThreadingHTTPServer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "e2e"))
import fake_openai  # noqa: E402

TIMES = os.environ["FAKE_TIMES"]


class Timed(fake_openai.Handler):
    def do_POST(self):
        start = time.time()
        super().do_POST()
        with open(TIMES, "a") as f:
            f.write(json.dumps({"path": self.path, "start": start, "end": time.time()}) + "\n")


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", fake_openai.PORT), Timed).serve_forever()
