#!/usr/bin/env python3
"""A Trellis device in Python with Debian's paho-mqtt (python3-paho-mqtt), nothing else.

First start: it holds only a shared claim certificate (a folder from `trellis provision`, see
setup.sh). It makes its own key and CSR with openssl (the key never leaves the device), asks for a
certificate on $aws/certificates/create-from-csr/json, registers itself through a fleet-provisioning
template on $aws/provisioning-templates/TEMPLATE/provision/json, and keeps its new identity in
--state. Every start after that connects with that identity.

Then it behaves like a lamp: it publishes telemetry on devices/THING/telemetry every --interval
seconds and follows its shadow: what is desired (read at start with shadow/get, then every
shadow/update/delta) is applied and reported back.

usage: device.py --claim DIR --template NAME --serial S [--state DIR] [--endpoint HOST:PORT]
                 [--interval SECONDS] [--seconds N]
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt


def client(client_id):
    """A paho client for MQTT 3.1.1 with paho 1.x or 2.x."""
    if hasattr(mqtt, "CallbackAPIVersion"):  # paho 2.x
        return mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, client_id=client_id, protocol=mqtt.MQTTv311)
    return mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv311)


class Connection:
    """One TLS connection with its certificate; waits for CONNACK and routes messages by topic."""

    def __init__(self, host, port, client_id, ca, cert, key):
        self.mqtt = client(client_id)
        self.mqtt.tls_set(ca_certs=ca, certfile=cert, keyfile=key)
        self.handlers = {}
        self.connected = threading.Event()
        self.refused = None
        self.mqtt.on_connect = self._on_connect
        self.mqtt.on_message = lambda _c, _u, m: self.handlers.get(m.topic, lambda _p: None)(m.payload)
        self.mqtt.connect(host, port, keepalive=30)
        self.mqtt.loop_start()
        if not self.connected.wait(10):
            raise SystemExit(f"device: no CONNACK from {host}:{port} within 10 s")
        if self.refused is not None:
            raise SystemExit(f"device: {host}:{port} refused the connection as {client_id}: {mqtt.connack_string(self.refused)}")

    def _on_connect(self, _client, _userdata, _flags, rc):
        self.refused = None if rc == 0 else rc
        self.connected.set()

    def subscribe(self, topic, handler):
        self.handlers[topic] = handler
        result, mid = self.mqtt.subscribe(topic, qos=1)
        if result != mqtt.MQTT_ERR_SUCCESS:
            raise SystemExit(f"device: cannot subscribe to {topic}: {mqtt.error_string(result)}")

    def publish(self, topic, document):
        info = self.mqtt.publish(topic, json.dumps(document), qos=1)
        info.wait_for_publish(10)

    def request(self, topic, document, timeout=10, absent_ok=False):
        """Publishes on TOPIC and waits for TOPIC/accepted or TOPIC/rejected (AWS's request and answer
        topics); with absent_ok a 404 rejection (no shadow yet) answers {}."""
        answer = {}
        done = threading.Event()

        def on(kind):
            def handler(payload):
                answer[kind] = json.loads(payload or b"{}")
                done.set()
            return handler

        self.subscribe(topic + "/accepted", on("accepted"))
        self.subscribe(topic + "/rejected", on("rejected"))
        time.sleep(0.2)  # the SUBACKs are on their way; Trellis answers the requester in any case
        self.publish(topic, document)
        if not done.wait(timeout):
            raise SystemExit(f"device: no answer on {topic}/accepted or /rejected within {timeout} s")
        if "rejected" in answer and absent_ok and answer["rejected"].get("code") == 404:
            return {}
        if "rejected" in answer:
            raise SystemExit(f"device: {topic} was rejected: {answer['rejected']}")
        return answer["accepted"]

    def close(self):
        self.mqtt.disconnect()
        self.mqtt.loop_stop()


def provision_by_claim(args, host, port):
    """Fleet provisioning by claim with a CSR; writes THING.cert.pem, THING.private.key and device.json into --state."""
    claim = json.load(open(os.path.join(args.claim, "device.json")))
    name = claim["thingName"]
    ca = os.path.join(args.claim, "ca.pem")
    os.makedirs(args.state, mode=0o700, exist_ok=True)
    key = os.path.join(args.state, "device.private.key")
    # The device's own key and CSR (P-256), made here: only the CSR leaves the device.
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key], check=True)
    os.chmod(key, 0o600)
    csr = subprocess.run(["openssl", "req", "-new", "-key", key, "-subj", f"/CN={args.serial}"], check=True, capture_output=True, text=True).stdout

    connection = Connection(host, port, f"claim-{args.serial}", ca, os.path.join(args.claim, name + ".cert.pem"), os.path.join(args.claim, name + ".private.key"))
    try:
        certificate = connection.request("$aws/certificates/create-from-csr/json", {"certificateSigningRequest": csr})
        registered = connection.request(f"$aws/provisioning-templates/{args.template}/provision/json",
                                        {"certificateOwnershipToken": certificate["certificateOwnershipToken"], "parameters": {"SerialNumber": args.serial}})
    finally:
        connection.close()

    thing = registered["thingName"]
    with open(os.path.join(args.state, "device.cert.pem"), "w") as f:
        f.write(certificate["certificatePem"])
    with open(os.path.join(args.state, "ca.pem"), "w") as f:
        f.write(open(ca).read())
    with open(os.path.join(args.state, "device.json"), "w") as f:
        json.dump({"thingName": thing, "host": host, "port": port, "deviceConfiguration": registered.get("deviceConfiguration", {})}, f)
    print(f"device: registered as {thing} (certificate {certificate['certificateId']})", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--claim", help="the claim certificate's folder (trellis provision --thing CLAIM --out DIR)")
    parser.add_argument("--template", help="fleet-provisioning template to register through")
    parser.add_argument("--serial", help="this device's serial number (the template's SerialNumber parameter)")
    parser.add_argument("--state", default="device-state", help="where the device keeps its own identity (default ./device-state)")
    parser.add_argument("--endpoint", help="MQTT over TLS as HOST:PORT (default: the claim folder's endpoint)")
    parser.add_argument("--interval", type=float, default=5, help="seconds between telemetry messages (default 5)")
    parser.add_argument("--seconds", type=float, default=0, help="stop after this many seconds (default: run until Ctrl-C)")
    args = parser.parse_args()

    if not os.path.exists(os.path.join(args.state, "device.json")):
        if not (args.claim and args.template and args.serial):
            parser.error(f"{args.state} holds no identity yet: give --claim, --template and --serial to provision by claim")
        claim = json.load(open(os.path.join(args.claim, "device.json")))
        host, port = claim["host"], int(claim["port"])
        if args.endpoint:
            host, port = args.endpoint.rsplit(":", 1)[0], int(args.endpoint.rsplit(":", 1)[1])
        provision_by_claim(args, host, port)

    identity = json.load(open(os.path.join(args.state, "device.json")))
    thing = identity["thingName"]
    host, port = identity["host"], int(identity["port"])
    if args.endpoint:
        host, port = args.endpoint.rsplit(":", 1)[0], int(args.endpoint.rsplit(":", 1)[1])
    connection = Connection(host, port, thing, os.path.join(args.state, "ca.pem"),
                            os.path.join(args.state, "device.cert.pem"), os.path.join(args.state, "device.private.key"))
    print(f"device: connected as {thing} to {host}:{port}", flush=True)

    state = {"power": "off", "brightness": 0}
    shadow = f"$aws/things/{thing}/shadow"

    def apply(desired):
        changed = {k: v for k, v in desired.items() if k in state and state[k] != v}
        if changed:
            state.update(changed)
            print(f"device: applied {json.dumps(changed, sort_keys=True)}", flush=True)
        connection.publish(shadow + "/update", {"state": {"reported": state}})

    connection.subscribe(shadow + "/update/delta", lambda payload: apply(json.loads(payload)["state"]))
    current = connection.request(shadow + "/get", {}, absent_ok=True)  # what was desired while it was away
    apply(current.get("state", {}).get("desired", {}))

    telemetry = identity.get("deviceConfiguration", {}).get("telemetryTopic") or f"devices/{thing}/telemetry"
    started = time.monotonic()
    try:
        while not args.seconds or time.monotonic() - started < args.seconds:
            connection.publish(telemetry, {"power": state["power"], "brightness": state["brightness"], "uptime": round(time.monotonic() - started, 1)})
            time.sleep(args.interval)
    except KeyboardInterrupt:
        pass
    finally:
        connection.close()


if __name__ == "__main__":
    sys.exit(main())
