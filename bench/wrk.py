"""wrk, the native load generator every HTTP benchmark here uses (a Python client tops out near 370 requests/s on
these 2 cores and would measure itself): its scripts, how it is run, and its figures.

    wrk(url, seconds, connections, script)    # closed loop: each connection sends again as soon as it is answered
    wrk_open_loop(url, seconds, script)       # open loop: `script` ends with open_loop_script(rate)
"""

import json
import re
import subprocess
from pathlib import Path

ORDER_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "{authorization}"
local products = {{{products}}}
request = function()
  local a = math.random(#products)
  local b = a % #products + 1
  local body = '{{"items": [{{"product_id": "' .. products[a] .. '", "quantity": 1, "price": 10.0}},' ..
    '{{"product_id": "' .. products[b] .. '", "quantity": 1, "price": 10.0}}],' ..
    ' "shipping_address": {{"line1": "1 Bench St", "city": "B", "state": "B", "postal_code": "1", "country": "B"}}}}'
  return wrk.format(nil, nil, nil, body)
end
"""

# Open loop: each wrk thread sends on a fixed schedule of its own (one request every `interval` ms) on whichever of
# its connections is free, so latency counts from the scheduled send as long as one is free. A send that found none
# went late (queueing it would hide, as a closed loop does) and is counted.
OPEN_LOOP_SCRIPT = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *now);
]]
local clock = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, clock)  -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

local interval = INTERVAL_MS
local threads = {}
setup = function(thread)
  thread:set("stagger", #threads * interval / THREADS)
  table.insert(threads, thread)
end

late = 0
local next_send = nil
delay = function()
  local now = now_ms()
  next_send = next_send or now + stagger
  local wait = next_send - now
  next_send = next_send + interval
  if wait < -1 then late = late + 1 end
  return math.max(0, wait)
end

done = function(summary, latency, requests)
  local sends_late = 0
  for _, thread in ipairs(threads) do sends_late = sends_late + thread:get("late") end
  io.write(string.format('open-loop {"sends_late": %d, "p50_ms": %.2f, "p99_ms": %.2f, "max_ms": %.2f}\\n',
    sends_late, latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
"""
OPEN_LOOP_THREADS, OPEN_LOOP_CONNECTIONS = 2, 64  # 32 requests in flight per thread before a send goes late
RATES = (10, 25, 50, 100, 200)


def open_loop_script(rate: float) -> str:
    interval_ms = OPEN_LOOP_THREADS * 1000 / rate
    return OPEN_LOOP_SCRIPT.replace("INTERVAL_MS", f"{interval_ms:.3f}").replace("THREADS", str(OPEN_LOOP_THREADS))


def wrk(url: str, seconds: float, connections: int, script: Path | None = None) -> dict:
    output = _wrk_output(url, seconds, connections, script)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    latency = dict(re.findall(r"\s+(50|99)%\s+([\d.]+\w+)", output))
    return {
        "requests_per_second": rate,
        **_counts(output),
        "p50": latency.get("50"),
        "p99": latency.get("99"),
    }


def wrk_open_loop(url: str, seconds: float, script: Path) -> dict:
    """wrk running `script` (ending with an open_loop_script): requests, non-2xx, late sends and latency in ms."""
    output = _wrk_output(url, seconds, OPEN_LOOP_CONNECTIONS, script, threads=OPEN_LOOP_THREADS)
    return {**_counts(output), **json.loads(re.search(r"open-loop (\{.*\})", output).group(1))}


def _counts(output: str) -> dict:
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    return {"requests": requests, "non_2xx": int(non_2xx.group(1)) if non_2xx else 0}


def _wrk_output(url: str, seconds: float, connections: int, script: Path | None, threads: int = 2) -> str:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{round(seconds)}s", "--latency", url]
    if script is not None:
        command[1:1] = ["-s", str(script)]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def order_script(path: Path, products: list[str], authorization: str, pacing: str = "") -> Path:
    """The wrk script placing orders of two of `products` as the holder of `authorization`, with `pacing` (an
    open_loop_script) appended."""
    listed = ",".join(f'"{product}"' for product in products)
    path.write_text(ORDER_SCRIPT.format(authorization=authorization, products=listed) + pacing)
    return path


# A reservation of one unit of one of `products` for an order id of its own: a run's nonce, the thread, a counter.
RESERVE_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "{authorization}"
local products = {{{products}}}
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end
local counter = 0
request = function()
  counter = counter + 1
  local order_id = string.format("{nonce}%08x%016x", thread_number, counter)
  local body = '{{"product_id": "' .. products[math.random(#products)] .. '", "quantity": 1, "order_id": "' ..
    order_id .. '"}}'
  return wrk.format(nil, nil, nil, body)
end
"""


def reserve_script(path: Path, products: list[str], authorization: str, nonce: str) -> Path:
    listed = ",".join(f'"{product}"' for product in products)
    path.write_text(RESERVE_SCRIPT.format(authorization=authorization, products=listed, nonce=nonce))
    return path
