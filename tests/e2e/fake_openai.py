#!/usr/bin/env python3
"""A fake OpenAI-compatible model server for the plugin e2e (stdlib only, 127.0.0.1).

Per user turn: the first call answers a tool call to the shell tool (`exec`, else `bash`) running
the command in $FAKE_COMMAND_FILE (read per request: the secrets are planted after the server
starts); once a tool result follows the last user message it answers a final text quoting
the tool output (so the secret reaches the assistant text too). Streaming and non-streaming.
Every request body (with its Authorization and X-Moltvault-E2e-Token headers) is appended to $FAKE_LOG (one JSON object
per line)."""
import json
import os
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ["FAKE_PORT"])
LOG = os.environ["FAKE_LOG"]
COMMAND_FILE = os.environ["FAKE_COMMAND_FILE"]
INTERNAL = "<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>"


def text_of(content):
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") for p in (content or []) if isinstance(p, dict))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("fake: " + (fmt % args) + "\n")

    def send_json(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.rstrip("/").endswith("/models"):
            return self.send_json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model", "owned_by": "fake"}]})
        self.send_json(404, {"error": {"message": "not found"}})

    def do_POST(self):
        n = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(n) or b"{}")
        with open(LOG, "a") as f:
            # Two headers too: the secrets e2e checks which values the gateway resolved.
            f.write(json.dumps({"path": self.path, "authorization": self.headers.get("authorization"),
                                "extra": self.headers.get("x-moltvault-e2e-token"), "body": body}) + "\n")
        if not self.path.rstrip("/").endswith("/chat/completions"):
            return self.send_json(404, {"error": {"message": "unsupported path"}})
        msgs = body.get("messages", [])
        tools = [t.get("function", {}).get("name") for t in body.get("tools") or []]
        # 2026.9+ appends an internal-context user message after tool results: not a new turn.
        users = [i for i, m in enumerate(msgs) if m.get("role") == "user" and INTERNAL not in text_of(m.get("content"))]
        last_user = max(users, default=-1)
        answered = any(m.get("role") == "tool" for m in msgs[last_user + 1:])
        model = body.get("model", "fake-model")
        cid = "chatcmpl-" + uuid.uuid4().hex[:12]
        if not answered and tools:
            name = "exec" if "exec" in tools else ("bash" if "bash" in tools else tools[0])
            with open(COMMAND_FILE) as f:
                args = json.dumps({"command": f.read().strip()})
            call_id = "call_" + uuid.uuid4().hex[:8]
            deltas = [
                {"role": "assistant", "content": None, "tool_calls": [{"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}]},
                {"tool_calls": [{"index": 0, "function": {"arguments": args}}]},
            ]
            finish = "tool_calls"
            full = {"role": "assistant", "content": None, "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}]}
        else:
            tool = next((m for m in reversed(msgs) if m.get("role") == "tool"), None)
            said = text_of(tool.get("content")) if tool else "(no tool)"
            txt = "Done. The tool said: " + said
            deltas = [{"role": "assistant", "content": "Done. "}, {"content": txt[6:]}]
            finish = "stop"
            full = {"role": "assistant", "content": txt}
        usage = {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
        now = int(time.time())
        if not body.get("stream"):
            return self.send_json(200, {"id": cid, "object": "chat.completion", "created": now, "model": model,
                                        "choices": [{"index": 0, "message": full, "finish_reason": finish}], "usage": usage})
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()

        def event(obj):
            self.wfile.write(b"data: " + json.dumps(obj).encode() + b"\n\n")
            self.wfile.flush()

        for d in deltas:
            event({"id": cid, "object": "chat.completion.chunk", "created": now, "model": model, "choices": [{"index": 0, "delta": d, "finish_reason": None}]})
        event({"id": cid, "object": "chat.completion.chunk", "created": now, "model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        event({"id": cid, "object": "chat.completion.chunk", "created": now, "model": model, "choices": [], "usage": usage})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
