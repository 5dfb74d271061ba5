"""A budget set from the CLI while a service is under load: how soon it stops the service's spending.

    .venv/bin/python benchmarks/budget_under_load.py [--concurrency 50] [--latency 0.05] [--warmup 4] [--after 6]

A threaded HTTP service (benchmarks/service_load.py, auto_instrument, no budget) runs a pipeline per request
against the loopback fake OpenAI (`--latency` seconds per call); `--concurrency` client threads send requests
back to back. After `--warmup` seconds, `genops budget set team:svc --daily 0.000001 --policy enforcing` runs in
another process. Printed: how long that command took; the provider requests made after it returned and when the
last of them arrived (goal: within 1 s, the budget applies to the next call everywhere); when the first refused
request (HTTP 500 from BudgetExceededError) came back and when the last admitted one was sent, relative to that
moment; the runs in the ledger by status against the provider requests.
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per provider call")
    parser.add_argument("--warmup", type=float, default=4.0, help="seconds of load before the budget is set")
    parser.add_argument("--after", type=float, default=6.0, help="seconds of load after the budget is set")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "tests"))
    from fakeproviders import FakeOpenAI

    tmp = tempfile.mkdtemp(prefix="genops-budget-load-")
    genops = str(Path(sys.executable).with_name("genops"))
    with FakeOpenAI() as fake:
        fake.latency = args.latency
        fake.usage = {"prompt_tokens": 10, "completion_tokens": 50}
        env = {**os.environ, "OPENAI_API_KEY": "sk-bench", "OPENAI_BASE_URL": fake.base_url,
               "GENOPS_LEDGER": os.path.join(tmp, "ledger.duckdb"), "HAYSTACK_TELEMETRY_ENABLED": "False"}
        port_file = os.path.join(tmp, "port")
        service = subprocess.Popen([sys.executable, str(REPO / "benchmarks" / "service_load.py"), "--serve", "auto",
                                    port_file], env=env, cwd=tmp, stderr=subprocess.DEVNULL)
        while not (os.path.exists(port_file) and Path(port_file).read_text()):
            time.sleep(0.05)
        port = int(Path(port_file).read_text())

        def get(path: str) -> int:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            conn.close()
            return response.status

        get("/warm-up")
        stop = threading.Event()
        lock = threading.Lock()
        events: list[tuple[float, float, int]] = []  # (sent, answered, status)

        def client(k: int) -> None:
            i = 0
            while not stop.is_set():
                sent = time.monotonic()
                status = get(f"/{k}-{i}")
                i += 1
                with lock:
                    events.append((sent, time.monotonic(), status))

        arrivals: list[tuple[float, int]] = []  # (when, provider requests so far), sampled every 10 ms

        def watch() -> None:
            while not stop.is_set():
                arrivals.append((time.monotonic(), fake.count("/chat/completions")))
                time.sleep(0.01)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(args.concurrency)]
        threads.append(threading.Thread(target=watch))
        for t in threads:
            t.start()
        time.sleep(args.warmup)
        started = time.monotonic()
        done = subprocess.run([genops, "budget", "set", "team:svc", "--daily", "0.000001", "--policy", "enforcing"],
                              env=env, cwd=tmp, capture_output=True, text=True)
        returned = time.monotonic()
        at_return = fake.count("/chat/completions")
        time.sleep(args.after)
        stop.set()
        for t in threads:
            t.join()
        service.terminate()
        service.wait(60)
        total = fake.count("/chat/completions")
        out = subprocess.run([genops, "runs", "--json", "--limit", str(len(events) + total + 10)], env=env, cwd=tmp,
                             capture_output=True, text=True).stdout
    runs = json.loads(out) if out.strip() else []
    runs = runs.get("runs", runs) if isinstance(runs, dict) else runs
    refused = [answered for _sent, answered, status in events if status != 200]
    admitted = [sent for sent, _answered, status in events if status == 200]
    print(f"concurrency {args.concurrency}, provider latency {args.latency:g} s")
    print(f"genops budget set: exit {done.returncode}, took {returned - started:.2f} s")
    last_arrival = max((when for (when, count), (_prev, before) in zip(arrivals[1:], arrivals, strict=False)
                        if count > before), default=None)
    print(f"provider requests after it returned: {total - at_return}; the last one arrived "
          f"{(last_arrival - returned) if last_arrival else float('nan'):+.2f} s after it returned (goal: within 1 s; "
          "each process looks at the budget stamp at most every 0.2 s)")
    if refused:
        print(f"first refused response {min(refused) - returned:+.2f} s after it returned")
    if admitted:
        print(f"last admitted request sent {max(admitted) - returned:+.2f} s after it returned")
    by_status: dict[str, int] = {}
    for run in runs:
        by_status[run.get("status")] = by_status.get(run.get("status"), 0) + 1
    print(f"requests ok {len(admitted)}, refused {len(refused)}; runs in the ledger by status {by_status} "
          f"(provider requests {total}, incl. the warm-up)")
    return 0 if done.returncode == 0 and (last_arrival is None or last_arrival - returned <= 1.0) else 1


if __name__ == "__main__":
    sys.exit(main())
