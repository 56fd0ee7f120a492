"""Turns a bench/results/*.jsonl file into the markdown tables of docs/benchmarks.md.

A traffic scenario may have run several rounds (BENCH_ROUNDS, brokers alternating). Every figure
quoted is then the median over the rounds: a broker's zero-loss rate is the median of its rounds'
zero-loss rates, and the latency at a rate is the median of the rounds' p50 and p99 at that rate.
"""
import json
import statistics
import sys
from collections import defaultdict

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
TRAFFIC = ("fanin", "fanin-persistent", "fanout", "p2p", "p2p-1", "p2p-lockstep")
NAMES = {"fanin": "fan-in", "fanin-persistent": "fan-in, persistent subscriber", "fanout": "fan-out", "p2p": "point-to-point",
         "p2p-1": "point-to-point, one pair", "p2p-lockstep": "point-to-point, publishers in lockstep"}

summaries = defaultdict(list)  # (broker, scenario, qos) -> [summary per round]
steps = defaultdict(list)      # (broker, scenario, qos, offered) -> [step per round]
shadow_steps = defaultdict(list)  # offered -> [step per round]
shadow_store = []
journal = []                       # session-journal (in-process) and journal-metrics (after a persistent run)
provision_runs = defaultdict(list)  # keys -> [summary per round]
connect_runs = defaultdict(list)    # (auth, broker) -> [summary per round]
telemetry = []
ingest_steps = defaultdict(list)   # (broker, offered) -> [step per round]
ingest_summary = defaultdict(list) # broker -> [summary per round]
sustained = []                     # ingest-sustained summaries
hops_steps = {}                    # (broker, round, step) -> p2p-hops ladder step (end to end)
hops_wire = []                     # p2p-hops-wire rows (bench/hops.py)
idle_skipped = [r for r in rows if r["scenario"] == "idle" and "skipped" in r]
rows = [r for r in rows if "skipped" not in r]
for r in rows:
    if r["scenario"] == "p2p-hops-wire":
        hops_wire.append(r)
        continue
    if r["scenario"] == "p2p-hops":
        if not r.get("summary"):
            hops_steps[(r["broker"], r["round"], r["step"])] = r
        continue
    if r["scenario"] == "ingest-sustained":
        sustained.append(r)
        continue
    if r["scenario"] == "ingest":
        (ingest_summary[r["broker"]] if r.get("summary") else ingest_steps[(r["broker"], r["offered"])]).append(r)
        continue
    if r["scenario"] in ("telemetry-store", "rules"):
        telemetry.append(r)
    elif r["scenario"] == "provision":
        provision_runs[r["keys"]].append(r)
    elif r["scenario"] == "connect":
        connect_runs[(r["auth"], r["broker"])].append(r)
    elif r["scenario"] == "shadow-store":
        shadow_store.append(r)
    elif r["scenario"] in ("session-journal", "journal-metrics"):
        journal.append(r)
    elif r["scenario"] == "shadow":
        if not r.get("summary"):
            shadow_steps[r["offered"]].append(r)
    elif r.get("summary"):
        summaries[(r["broker"], r["scenario"], r.get("qos"))].append(r)
    elif r["scenario"] in TRAFFIC:
        steps[(r["broker"], r["scenario"], r["qos"], r["offered"])].append(r)


def fmt(v, digits=1):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}"


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median_low(values) if values else None


def at_rate(broker, scenario, qos, rate):
    """Median p50, p99, CPU and the number of rounds that passed at one offered rate."""
    runs = steps.get((broker, scenario, qos, rate), [])
    if not runs:
        return None
    return {
        "p50": median(r["p50ms"] for r in runs),
        "p99": median(r["p99ms"] for r in runs),
        "cpu": median(r["cpuPct"] for r in runs),
        "rss": median(r["rssMiB"] for r in runs),
        "passed": sum(1 for r in runs if r["passed"]),
        "rounds": len(runs),
    }


traffic = sorted({(s, q) for (_, s, q) in summaries if s in TRAFFIC}, key=lambda k: (TRAFFIC.index(k[0]), k[1]))
print("| scenario | broker | rounds | zero-loss rate, p99 < 50 ms (msg/s offered, median) | each round | deliveries/s | p50 ms | p99 ms | broker CPU % (of 200) | RSS MiB |")
print("|---|---|---|---|---|---|---|---|---|---|")
for scenario, qos in traffic:
    for broker in ("mosquitto", "trellis"):
        runs = summaries.get((broker, scenario, qos), [])
        if not runs:
            continue
        rate = median(r["zeroLossRate"] for r in runs)
        per_delivery = 1000 if scenario == "fanout" else 1
        m = at_rate(broker, scenario, qos, rate) if rate else None
        each = ", ".join(fmt(r["zeroLossRate"], 0) for r in runs)
        print(f'| {NAMES[scenario]} QoS {qos} | {broker} | {len(runs)} | {fmt(rate, 0)} | {each} | {fmt(rate * per_delivery if rate else None, 0)} | '
              f'{fmt(m and m["p50"], 2)} | {fmt(m and m["p99"], 2)} | {fmt(m and m["cpu"], 0)} | {fmt(m and m["rss"])} |')
print()
print("Latency at the same offered rate, every rate up to Mosquitto's zero-loss rate (median p50 / p99 ms; passed = rounds with no loss and p99 < 50 ms):")
print()
print("| scenario | rate | Mosquitto p50 / p99 | passed | Trellis p50 / p99 | passed | Trellis p50 ≤ Mosquitto | Trellis p99 ≤ Mosquitto |")
print("|---|---|---|---|---|---|---|---|")
for scenario, qos in traffic:
    runs = summaries.get(("mosquitto", scenario, qos), [])
    ceiling = median(r["zeroLossRate"] for r in runs)
    if not ceiling:
        continue
    rates = sorted({k[3] for k in steps if k[0] == "mosquitto" and k[1] == scenario and k[2] == qos and k[3] <= ceiling})
    for rate in rates:
        m = at_rate("mosquitto", scenario, qos, rate)
        t = at_rate("trellis", scenario, qos, rate)
        if not m or not t:
            continue
        print(f'| {NAMES[scenario]} QoS {qos} | {fmt(rate, 0)} | {fmt(m["p50"], 2)} / {fmt(m["p99"], 2)} | {m["passed"]}/{m["rounds"]} | '
              f'{fmt(t["p50"], 2)} / {fmt(t["p99"], 2)} | {t["passed"]}/{t["rounds"]} | {"yes" if t["p50"] <= m["p50"] else "no"} | {"yes" if t["p99"] <= m["p99"] else "no"} |')
retried = [r for k, runs in steps.items() for r in runs if r.get("attempts", 1) > 1]
if retried:
    counts = {b: sum(1 for r in retried if r["broker"] == b) for b in ("mosquitto", "trellis")}
    print()
    print(f'Steps measured again because the host took more than 2 % of the CPU (steal) while they ran: '
          f'Mosquitto {counts["mosquitto"]}, Trellis {counts["trellis"]}; '
          f'steps kept with steal still above 2 %: {sum(1 for runs in steps.values() for r in runs if r.get("stealPct", 0) > 2)}.')
print()
print("| overload (20 → 1, unthrottled, QoS 0, 5 s) | accepted msg/s | delivered msg/s | loss % after drain | broker CPU % | RSS MiB |")
print("|---|---|---|---|---|---|")
for (broker, scenario, _), runs in summaries.items():
    if scenario == "overload":
        for r in runs:
            print(f'| {broker} | {fmt(r["acceptedPerSecond"], 0)} | {fmt(r["deliveredPerSecond"], 0)} | {fmt(r["lossPct"], 3)} | {fmt(r["cpuPct"], 0)} | {fmt(r["rssMiB"])} |')
print()
print("| idle connections | broker | RSS before MiB | RSS after MiB | KiB per connection | KiB per connection past the first tenth | RSS 15 s later MiB | KiB per connection 15 s later |")
print("|---|---|---|---|---|---|---|---|")
for (broker, scenario, _), runs in summaries.items():
    if scenario == "idle":
        for r in runs:
            print(f'| {fmt(r["connections"])} | {broker} | {fmt(r["rssBeforeMiB"])} | {fmt(r["rssAfterMiB"])} | {fmt(r["kibPerConnection"], 2)} | {fmt(r.get("marginalKibPerConnection"), 2)} | {fmt(r.get("rssSettledMiB"))} | {fmt(r.get("kibPerConnectionSettled"), 2)} |')
for r in idle_skipped:
    print(f'| {fmt(r["connections"])} | (not run) | | | {r["skipped"]} | | | |')

if shadow_steps:
    print()
    print("Shadow updates over MQTT, 1000 things (median over rounds; passed = every delta arrived, nothing rejected, p99 < 50 ms):")
    print()
    print("| updates/s offered | per thing | deltas received | rejected | p50 ms | p99 ms | broker CPU % | passed |")
    print("|---|---|---|---|---|---|---|---|")
    for rate in sorted(shadow_steps):
        runs = shadow_steps[rate]
        things = runs[0]["things"]
        print(f'| {fmt(rate, 0)} | {fmt(rate / things, 0)} | {fmt(median(r["deltas"] for r in runs), 0)} / {fmt(median(r["sent"] for r in runs), 0)} | {fmt(median(r["rejected"] for r in runs), 0)} | '
              f'{fmt(median(r["p50ms"] for r in runs), 2)} | {fmt(median(r["p99ms"] for r in runs), 2)} | {fmt(median(r["cpuPct"] for r in runs), 0)} | {sum(1 for r in runs if r["passed"])}/{len(runs)} |')
if shadow_store:
    print()
    print("| in-process, 10 000 things | operations/s | writes per commit | p50 ms | p99 ms |")
    print("|---|---|---|---|---|")
    for r in shadow_store:
        ops = r.get("writesPerSecond", r.get("updatesPerSecond"))
        label = "store: durable writes" if r["part"] == "store" else "service: parse, merge, delta, durable write"
        print(f'| {label} ({r["inFlight"]} in flight) | {fmt(ops, 0)} | {fmt(r["writesPerCommit"])} | {fmt(r["p50ms"], 2)} | {fmt(r["p99ms"], 2)} |')

if journal:
    print()
    print("Persistent-session journal (sessions.db):")
    print()
    print("| measure | messages | rows written or deleted | rows per message | commits | messages/s | rows per commit | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in journal:
        if r["scenario"] == "journal-metrics":
            print(f'| {r["of"]}, round {r["round"]}: whole run | {fmt(r["messages"], 0)} | {fmt(r["rows"], 0)} | {fmt(r["rows"] / max(1, r["messages"]), 3)} | {fmt(r["commits"], 0)} | – | {fmt(r["rows"] / max(1, r["commits"]))} | – | – |')
        else:
            print(f'| in-process, every message written, {r["inFlight"]} in flight | – | – | 1 | – | {fmt(r["messagesPerSecond"], 0)} | {fmt(r["rowsPerCommit"])} | {fmt(r["p50ms"], 2)} | {fmt(r["p99ms"], 2)} |')

if provision_runs:
    print()
    print("Fleet provisioning by claim, end to end per device: claim connect (TLS), certificate, RegisterThing, reconnect with the new certificate (median over rounds):")
    print()
    print("| keys | devices | concurrency | errors | devices/s | each round | p50 ms | p99 ms | broker CPU % |")
    print("|---|---|---|---|---|---|---|---|---|")
    for keys in ("server", "csr"):
        runs = provision_runs.get(keys, [])
        if runs:
            label = "made by the server (RSA-2048, CreateKeysAndCertificate)" if keys == "server" else "made by the device (P-256, CreateCertificateFromCsr)"
            print(f'| {label} | {runs[0]["devices"]} | {runs[0]["concurrency"]} | {sum(r["errors"] for r in runs)} | {fmt(median(r["devicesPerSecond"] for r in runs))} | '
                  f'{", ".join(fmt(r["devicesPerSecond"]) for r in runs)} | {fmt(median(r["p50ms"] for r in runs), 0)} | {fmt(median(r["p99ms"] for r in runs), 0)} | {fmt(median(r["cpuPct"] for r in runs), 0)} |')
if connect_runs:
    print()
    print("Connects of the provisioned devices, all staying connected (second pass; median over rounds):")
    print()
    print("| credential | broker | devices | concurrency | errors | connects/s | each round | p50 ms | p99 ms | broker CPU % | RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for auth in ("token", "cert"):
        for broker in ("mosquitto", "trellis"):
            runs = connect_runs.get((auth, broker), [])
            if runs:
                label = "token (user name + password, TCP)" if auth == "token" else "certificate (TLS)"
                print(f'| {label} | {broker} | {runs[0]["devices"]} | {runs[0]["concurrency"]} | {sum(r["errors"] for r in runs)} | {fmt(median(r["connectsPerSecond"] for r in runs), 0)} | '
                      f'{", ".join(fmt(r["connectsPerSecond"], 0) for r in runs)} | {fmt(median(r["p50ms"] for r in runs), 2)} | {fmt(median(r["p99ms"] for r in runs), 2)} | '
                      f'{fmt(median(r["cpuPct"] for r in runs), 0)} | {fmt(median(r["rssMiB"] for r in runs))} |')

if telemetry:
    print()
    print("Time-series store, in-process:")
    print()
    print("| part | figure |")
    print("|---|---|")
    for r in telemetry:
        if r["scenario"] == "rules":
            print(f'| rules engine alone: a store rule over {fmt(r["messages"])} queued messages (2 measures each) | {fmt(r["messagesPerSecond"], 0)} messages/s, {fmt(r["pointsPerSecond"], 0)} points/s |')
        elif r["part"] == "compact":
            print(f'| compact {r["days"]} finished day(s) (rewrite sorted by thing, measure, time) | {fmt(r["seconds"], 2)} s |')
        elif r["part"] == "append":
            print(f'| append {fmt(r["points"])} points across {fmt(r["things"])} things | {fmt(r["pointsPerSecond"], 0)} points/s |')
        else:
            print(f'| {r["query"]} ({fmt(r["rows"])} rows) | median {fmt(r["medianMs"], 2)} ms, max {fmt(r["maxMs"], 2)} ms |')

if ingest_summary:
    print()
    print("End-to-end ingest: MQTT publish (QoS 0, 100 publishers) -> store rule -> queryable points; Mosquitto gets the same publishers and stores nothing (median over rounds):")
    print()
    print("| messages/s offered | Mosquitto: sent, broker CPU % | Trellis: points queryable / expected | Trellis points/s | queryable after (s) | Trellis broker CPU % | passed |")
    print("|---|---|---|---|---|---|---|")
    for rate in sorted({k[1] for k in ingest_steps}):
        m = ingest_steps.get(("mosquitto", rate), [])
        t = ingest_steps.get(("trellis", rate), [])
        mtext = f'{fmt(median(r["sent"] for r in m), 0)}, {fmt(median(r["cpuPct"] for r in m), 0)}' if m else "–"
        if t:
            print(f'| {fmt(rate, 0)} | {mtext} | {fmt(median(r["points"] for r in t), 0)} / {fmt(median(r["sent"] * 2 for r in t), 0)} | {fmt(median(r["pointsPerSecond"] for r in t), 0)} | '
                  f'{fmt(median(r["queryableAfterSeconds"] for r in t), 2)} | {fmt(median(r["cpuPct"] for r in t), 0)} | {sum(1 for r in t if r["passed"])}/{len(t)} |')
    for broker, runs in ingest_summary.items():
        print(f'\n{broker}: highest rate kept up with (nothing lost; for Trellis every point queryable within 1 s of the last publish), per round: {", ".join(fmt(r["zeroLossRate"], 0) for r in runs)} messages/s')

for r in sustained:
    print()
    print(f'Sustained ingest: {fmt(r["offered"], 0)} messages/s for {r["seconds"]} s; {fmt(r["sent"], 0)} sent, {fmt(r["points"], 0)} points stored. Every 30 s:')
    print()
    print("| s | points stored | RSS MiB | store engine MiB | managed heap MiB |")
    print("|---|---|---|---|---|")
    store = r.get("storeMiB") or [None] * len(r["rssMiB"])
    heap = r.get("heapMiB") or [None] * len(r["rssMiB"])
    for i in range(5, len(r["rssMiB"]), 6):
        print(f'| {(i + 1) * 5} | {fmt(r["pointsOverTime"][i], 0)} | {fmt(r["rssMiB"][i])} | {fmt(store[i])} | {fmt(heap[i])} |')

def subscriber_side(pairs, remainder):
    """Measured per message when the generator traced its reads (--trace); else what the medians leave."""
    traced = [w for _, w in pairs if "subscriberP50Ms" in w]
    if not traced:
        return f"{fmt(remainder, 2)} (remainder)"
    return f'{fmt(median(w["subscriberP50Ms"] for w in traced), 2)} / {fmt(median(w["subscriberP90Ms"] for w in traced), 2)}'


if hops_wire:
    joined = defaultdict(list)  # (broker, offered) -> [(ladder step, wire row)]
    for w in hops_wire:
        step = hops_steps.get((w["broker"], w["round"], w["step"]))
        if step:
            joined[(w["broker"], step["offered"])].append((step, w))
    print()
    print("Point-to-point latency split into hops, from a capture of the loopback interface (p2p-hops; median over rounds, ms):")
    print()
    print("| broker | rate | end to end p50 | generator send -> wire | broker p50 / p90 / p99 (packet in -> out) | broker per message while busy (µs) | messages in the broker on arrival (p50) | subscriber side p50 / p90 |")
    print("|---|---|---|---|---|---|---|---|")
    for broker, rate in sorted(joined, key=lambda k: (k[1], k[0])):
        pairs = joined[(broker, rate)]
        e2e = median(s["p50ms"] for s, _ in pairs)
        send = median(w["publisherToWireMs"] for _, w in pairs)
        b50 = median(w["brokerP50Ms"] for _, w in pairs)
        print(f'| {broker} | {fmt(rate, 0)} | {fmt(e2e, 2)} | {fmt(send, 3)} | {fmt(b50, 2)} / {fmt(median(w["brokerP90Ms"] for _, w in pairs), 2)} / '
              f'{fmt(median(w["brokerP99Ms"] for _, w in pairs), 2)} | {fmt(median(w["serviceUs"] for _, w in pairs))} | {fmt(median(w["backlogP50"] for _, w in pairs), 0)} | '
              f'{subscriber_side(pairs, e2e - send - b50)} |')
