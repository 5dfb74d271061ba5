"""A plain threaded HTTP service calling `pipeline.run()` per request, with and without genops, under load.

    .venv/bin/python benchmarks/service_load.py --requests 300 --concurrency 100 --latency 0.05

For each mode (none: no genops; auto: auto_instrument; track: track_pipeline per request) a service process is
started (ThreadingHTTPServer, listen backlog 1024), the loopback fake OpenAI answers each call after `--latency`
seconds, and `--concurrency` client threads send `--requests` requests. Prints requests/s per mode, the ratio to
no genops, and for the genops modes the runs in the ledger against the provider requests made.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def serve(mode: str, port_file: str) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from haystack import Pipeline
    from haystack.components.builders import ChatPromptBuilder
    from haystack.components.generators.chat import OpenAIChatGenerator
    from haystack.dataclasses import ChatMessage

    pipeline = Pipeline()
    pipeline.add_component("prompt", ChatPromptBuilder(template=[ChatMessage.from_user("{{ q }}")],
                                                       required_variables=["q"]))
    pipeline.add_component("llm", OpenAIChatGenerator(model="gpt-4o-mini", generation_kwargs={"max_tokens": 50}))
    pipeline.connect("prompt.prompt", "llm.messages")
    adapter = None
    if mode == "auto":
        from genops.providers.haystack import auto_instrument

        auto_instrument(team="svc", project="p", daily_budget_limit=None, cost_summary=False)
    elif mode == "track":
        from genops.providers.haystack import GenOpsHaystackAdapter

        adapter = GenOpsHaystackAdapter(team="svc", project="p", daily_budget_limit=None)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802
            data = {"prompt": {"q": f"question {self.path}"}}
            try:
                if adapter is not None:
                    with adapter.track_pipeline("svc-request"):
                        out = pipeline.run(data)
                else:
                    out = pipeline.run(data)
                code, body = 200, json.dumps({"reply": out["llm"]["replies"][0].text}).encode()
            except Exception as exc:
                code, body = 500, json.dumps({"error": type(exc).__name__}).encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer.request_queue_size = 1024
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    Path(port_file).write_text(str(server.server_address[1]))
    server.serve_forever()


def drive(mode: str, requests: int, concurrency: int, latency: float) -> float:
    sys.path.insert(0, str(REPO / "tests"))
    from fakeproviders import FakeOpenAI

    tmp = tempfile.mkdtemp(prefix="genops-service-load-")
    with FakeOpenAI() as fake:
        fake.latency = latency
        fake.usage = {"prompt_tokens": 10, "completion_tokens": 50}
        env = {**os.environ, "OPENAI_API_KEY": "sk-bench", "OPENAI_BASE_URL": fake.base_url,
               "GENOPS_LEDGER": os.path.join(tmp, "ledger.duckdb"), "HAYSTACK_TELEMETRY_ENABLED": "False"}
        port_file = os.path.join(tmp, "port")
        proc = subprocess.Popen([sys.executable, __file__, "--serve", mode, port_file], env=env, cwd=tmp)
        while not (os.path.exists(port_file) and Path(port_file).read_text()):
            time.sleep(0.05)
        port = int(Path(port_file).read_text())

        def get(i: int) -> int:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            conn.request("GET", f"/{i}")
            response = conn.getresponse()
            response.read()
            conn.close()
            return response.status

        get(-1)  # warm up (imports, the ingester process)
        todo = iter(range(requests))
        lock = threading.Lock()
        codes: list[int] = []

        def worker() -> None:
            while True:
                with lock:
                    i = next(todo, None)
                if i is None:
                    return
                status = get(i)
                with lock:
                    codes.append(status)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rate = requests / (time.perf_counter() - t0)
        proc.terminate()
        proc.wait(60)
        line = f"{mode:6s} {rate:8.1f} req/s  ok {codes.count(200)}/{requests}"
        if mode != "none":
            genops = str(Path(sys.executable).with_name("genops"))
            out = subprocess.run([genops, "runs", "--json", "--limit", str(requests + 10)], env=env, cwd=tmp,
                                 capture_output=True, text=True).stdout
            runs = json.loads(out) if out.strip() else []
            runs = runs.get("runs", runs) if isinstance(runs, dict) else runs
            line += f"  runs in ledger {len(runs)}, provider requests {fake.count('/chat/completions')}"
        print(line, flush=True)
        return rate


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--modes", default="none,auto,track")
    args = parser.parse_args()
    rates = {mode: drive(mode, args.requests, args.concurrency, args.latency) for mode in args.modes.split(",")}
    if "none" in rates:
        for mode, rate in rates.items():
            if mode != "none":
                print(f"{mode}/none: {rate / rates['none']:.2f}")


if __name__ == "__main__":
    main()
