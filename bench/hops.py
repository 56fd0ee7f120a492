"""Splits point-to-point latency into hops, from a packet capture on the loopback interface.

usage: hops.py CAPTURE.pcap BROKER_PORT CLOCK_OFFSET_NS BROKER ROUND [TRACE]

The load generator writes into every payload its send time (the monotonic clock, in ns), the
publisher's sequence number and the ladder step. Each PUBLISH therefore shows up twice in a capture
of the broker's port: once on its way in (publisher -> broker) and once on its way out (broker ->
subscriber), with the same 16 leading payload bytes. Pairing them gives, per ladder step:

- publisherToWireMs: from the generator's send call to the packet on the wire (the generator's send
  path; CLOCK_OFFSET_NS converts the monotonic send time to the capture's wall clock);
- broker*Ms: from the packet in to the packet out, i.e. everything the broker does for the message,
  including waiting for a CPU and for the messages queued ahead of it;
- serviceUs: the mean time between two consecutive packets out while the broker is busy (gaps under
  200 us), i.e. the broker's cost per message while it has a queue;
- backlogP50: how many messages were in the broker (in, not yet out) when a message arrived.

What remains of the end-to-end latency the generator reports is the subscriber side: from the packet
out to the generator reading it. With TRACE (the generator's --trace file: send time, sequence, step
and read time of every message it counted) that side is measured per message too:
subscriberP50Ms/subscriberP90Ms, and endToEndP50Ms over the same messages. One JSON line per step on
stdout, scenario "p2p-hops-wire".
"""
import json
import struct
import sys
from collections import defaultdict

NANO_MAGIC = 0xA1B23C4D
BUSY_GAP_NS = 200_000


def packets(path):
    data = open(path, "rb").read()
    if len(data) < 24 or struct.unpack("<I", data[:4])[0] != NANO_MAGIC:
        raise SystemExit(f"{path}: not a nanosecond pcap (run tcpdump with --time-stamp-precision=nano)")
    link = struct.unpack("<I", data[20:24])[0]
    header = {1: 14, 113: 16, 0: 4}.get(link)
    if header is None:
        raise SystemExit(f"{path}: link type {link} is not handled")
    pos = 24
    while pos + 16 <= len(data):
        sec, nsec, incl, _ = struct.unpack("<IIII", data[pos:pos + 16])
        pos += 16
        frame = data[pos:pos + incl]
        pos += incl
        ip = frame[header:]
        if len(ip) < 20 or ip[0] >> 4 != 4:
            continue
        tcp = ip[(ip[0] & 15) * 4:]
        if len(tcp) < 20:
            continue
        sport, dport = struct.unpack(">HH", tcp[:4])
        yield sec * 1_000_000_000 + nsec, sport, dport, tcp[(tcp[12] >> 4) * 4:]


def publishes(segment):
    """The 20 leading payload bytes of each complete QoS 0/1 PUBLISH in a TCP segment."""
    i = 0
    while i < len(segment):
        first = segment[i]
        j, length, shift = i + 1, 0, 0
        while j < len(segment) and j - i <= 4:
            b = segment[j]
            length |= (b & 127) << shift
            shift += 7
            j += 1
            if b < 128:
                break
        end = j + length
        if first >> 4 == 3 and end <= len(segment) and j + 2 <= end:
            topic_len = struct.unpack(">H", segment[j:j + 2])[0]
            start = j + 2 + topic_len + (2 if (first >> 1) & 3 else 0)
            if start + 20 <= end:
                yield bytes(segment[start:start + 20])
        if end > len(segment):
            return
        i = end


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def main():
    path, port, offset, broker, round_ = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
    seen_in, seen_out = {}, {}
    for t, sport, dport, segment in packets(path):
        target = seen_in if dport == port else seen_out if sport == port else None
        if target is None:
            continue
        for head in publishes(segment):
            target.setdefault(head[:16], (t, head))

    read_at = {}
    if len(sys.argv) > 6:
        for line in open(sys.argv[6]):
            sent, sequence, _, read = map(int, line.split())
            read_at[(sent, sequence)] = read

    by_step = defaultdict(list)  # step -> [(t_in, t_out, sent, sequence)]
    for key, (t_in, head) in seen_in.items():
        if key in seen_out:
            sent, sequence, step = struct.unpack("<qqi", head)
            by_step[step].append((t_in, seen_out[key][0], sent, sequence))

    for step in sorted(s for s in by_step if s > 0):
        hops = sorted(by_step[step])
        broker_ns = [t_out - t_in for t_in, t_out, _, _ in hops]
        to_wire = [t_in - offset - sent for t_in, _, sent, _ in hops]
        outs = sorted(t_out for _, t_out, _, _ in hops)
        busy = [b - a for a, b in zip(outs, outs[1:]) if b - a < BUSY_GAP_NS]
        events = sorted([(t_in, 1) for t_in, _, _, _ in hops] + [(t_out, -1) for _, t_out, _, _ in hops])
        depth, backlog = 0, []
        for _, delta in events:
            if delta > 0:
                backlog.append(depth)
            depth += delta
        sides = {}
        if read_at:
            subscriber_ns, end_to_end_ns = [], []
            for _, t_out, sent, sequence in hops:
                read = read_at.get((sent, sequence))
                if read is not None:
                    subscriber_ns.append(read + offset - t_out)
                    end_to_end_ns.append(read - sent)
            if subscriber_ns:
                sides = {
                    "traced": len(subscriber_ns),
                    "subscriberP50Ms": round(percentile(subscriber_ns, 0.5) / 1e6, 3),
                    "subscriberP90Ms": round(percentile(subscriber_ns, 0.9) / 1e6, 3),
                    "endToEndP50Ms": round(percentile(end_to_end_ns, 0.5) / 1e6, 3),
                }
        print(json.dumps({
            "round": round_,
            "broker": broker,
            "scenario": "p2p-hops-wire",
            "step": step,
            "messages": len(hops),
            "publisherToWireMs": round(percentile(to_wire, 0.5) / 1e6, 3),
            "brokerP50Ms": round(percentile(broker_ns, 0.5) / 1e6, 3),
            "brokerP90Ms": round(percentile(broker_ns, 0.9) / 1e6, 3),
            "brokerP99Ms": round(percentile(broker_ns, 0.99) / 1e6, 3),
            "serviceUs": round(sum(busy) / len(busy) / 1e3, 1) if busy else None,
            "backlogP50": percentile(backlog, 0.5),
            **sides,
        }))


if __name__ == "__main__":
    main()
