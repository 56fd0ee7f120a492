"""Turns a bench/results/*.jsonl file into the markdown tables of docs/benchmarks.md."""
import json
import sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
summaries = [r for r in rows if r.get("summary")]
steps = [r for r in rows if not r.get("summary")]


def fmt(v, digits=1):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}"


def step(broker, scenario, qos, rate):
    for r in steps:
        if r["broker"] == broker and r["scenario"] == scenario and r["qos"] == qos and r["offered"] == rate:
            return r
    return None


print("| scenario | broker | zero-loss rate, p99 < 50 ms (msg/s offered) | deliveries/s | p50 ms | p99 ms | broker CPU % (of 200) | RSS MiB |")
print("|---|---|---|---|---|---|---|---|")
for r in summaries:
    if r["scenario"] in ("fanin", "fanout", "p2p"):
        name = f'{r["scenario"]} QoS {r["qos"]}'
        print(f'| {name} | {r["broker"]} | {fmt(r["zeroLossRate"], 0)} | {fmt(r["deliveriesPerSecond"], 0)} | {fmt(r["p50ms"], 2)} | {fmt(r["p99ms"], 2)} | {fmt(r["cpuPct"], 0)} | {fmt(r["rssMiB"])} |')
print()
print("Latency at the same offered rate (Mosquitto's highest zero-loss rate):")
print()
print("| scenario | rate | Mosquitto p50 / p99 ms | Trellis p50 / p99 ms | Trellis loss % |")
print("|---|---|---|---|---|")
for r in summaries:
    if r["broker"] == "mosquitto" and r["scenario"] in ("fanin", "fanout", "p2p") and r["zeroLossRate"]:
        t = step("trellis", r["scenario"], r["qos"], r["zeroLossRate"])
        if t:
            print(f'| {r["scenario"]} QoS {r["qos"]} | {fmt(r["zeroLossRate"], 0)} | {fmt(r["p50ms"], 2)} / {fmt(r["p99ms"], 2)} | {fmt(t["p50ms"], 2)} / {fmt(t["p99ms"], 2)} | {fmt(t["lossPct"], 3)} |')
print()
print("| overload (20 → 1, unthrottled, QoS 0, 5 s) | accepted msg/s | delivered msg/s | loss % after drain | broker CPU % | RSS MiB |")
print("|---|---|---|---|---|---|")
for r in summaries:
    if r["scenario"] == "overload":
        print(f'| {r["broker"]} | {fmt(r["acceptedPerSecond"], 0)} | {fmt(r["deliveredPerSecond"], 0)} | {fmt(r["lossPct"], 3)} | {fmt(r["cpuPct"], 0)} | {fmt(r["rssMiB"])} |')
print()
print("| idle connections | broker | RSS before MiB | RSS after MiB | KiB per connection |")
print("|---|---|---|---|---|")
for r in summaries:
    if r["scenario"] == "idle":
        print(f'| {fmt(r["connections"])} | {r["broker"]} | {fmt(r["rssBeforeMiB"])} | {fmt(r["rssAfterMiB"])} | {fmt(r["kibPerConnection"], 2)} |')
