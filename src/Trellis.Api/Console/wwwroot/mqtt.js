// A small MQTT 5 client over a WebSocket, for the console's MQTT page and its live views. It opens
// /console/mqtt on this server: the session cookie says who connects (the server checks it and
// the page's origin before the upgrade), so the page holds no secret. The broker applies the
// signed-in user's rights: viewers subscribe and receive, operators and admins publish too.

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Reason codes a person may meet here (MQTT 5 §2.4), for messages that say what happened. */
const REASONS = {
  0x80: "unspecified error", 0x83: "implementation specific error", 0x87: "not authorized", 0x8f: "topic filter invalid",
  0x90: "topic name invalid", 0x91: "packet identifier in use", 0x97: "quota exceeded", 0x99: "payload format invalid",
  0x8e: "session taken over", 0x8b: "server shutting down", 0x8d: "keep-alive timeout", 0x9e: "shared subscriptions not supported",
};
export const reason = (code) => `${REASONS[code] ?? "refused"} (0x${code.toString(16).padStart(2, "0")})`;

function utf8(text) {
  const bytes = encoder.encode(text);
  return [bytes.length >> 8, bytes.length & 0xff, ...bytes];
}

function varint(n) {
  const out = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return out;
}

function packet(type, flags, body) {
  return new Uint8Array([(type << 4) | flags, ...varint(body.length), ...body]);
}

export class MqttClient {
  /** onMessage(topic, payloadBytes, retained); onState(text, ok). */
  constructor(onMessage, onState) {
    this.onMessage = onMessage;
    this.onState = onState ?? (() => {});
    this.nextId = 1;
    this.pending = new Map();
    this.buffer = new Uint8Array(0);
    this.closed = false;
  }

  /** Opens the WebSocket and sends CONNECT; resolves on a successful CONNACK. */
  connect(clientId) {
    return new Promise((resolve, reject) => {
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      const socket = new WebSocket(`${scheme}//${location.host}/console/mqtt`, "mqtt");
      socket.binaryType = "arraybuffer";
      this.socket = socket;
      this.connected = { resolve, reject };
      socket.onopen = () => {
        // CONNECT: MQTT 5, clean start, keep-alive 60 s, no properties, no user name or password.
        socket.send(packet(1, 0, [...utf8("MQTT"), 5, 0x02, 0, 60, 0, ...utf8(clientId)]));
      };
      socket.onmessage = (event) => this.receive(new Uint8Array(event.data));
      socket.onerror = () => this.fail("the connection to the server failed");
      socket.onclose = (event) => this.fail(event.code === 1000 ? "disconnected" : `the connection closed (${event.code})`);
    });
  }

  fail(message) {
    clearInterval(this.pinger);
    if (this.connected) { this.connected.reject(new Error(message)); this.connected = null; }
    for (const { reject } of this.pending.values()) reject(new Error(message));
    this.pending.clear();
    if (!this.closed) this.onState(message, false);
    this.closed = true;
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.pinger);
    try { this.socket.send(packet(14, 0, [0, 0])); this.socket.close(1000); } catch { /* already gone */ }
  }

  id() {
    const id = this.nextId;
    this.nextId = this.nextId === 65535 ? 1 : this.nextId + 1;
    return id;
  }

  request(id, bytes) {
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.send(bytes);
    });
  }

  /** Resolves with the granted QoS; rejects with the reason a refusal gives. */
  async subscribe(filter, qos = 0) {
    const id = this.id();
    const [code] = await this.request(id, packet(8, 2, [id >> 8, id & 0xff, 0, ...utf8(filter), qos]));
    if (code >= 0x80) throw new Error(`subscribe to ${filter}: ${reason(code)}`);
    return code;
  }

  async unsubscribe(filter) {
    const id = this.id();
    await this.request(id, packet(10, 2, [id >> 8, id & 0xff, 0, ...utf8(filter)]));
  }

  /** QoS 0 resolves once sent; QoS 1 once the broker's PUBACK says it took the message. */
  async publish(topic, payload, qos = 0, retain = false) {
    const bytes = typeof payload === "string" ? encoder.encode(payload) : payload;
    const flags = (qos << 1) | (retain ? 1 : 0);
    if (qos === 0) {
      this.socket.send(packet(3, flags, [...utf8(topic), 0, ...bytes]));
      return 0;
    }
    const id = this.id();
    const [code] = await this.request(id, packet(3, flags, [...utf8(topic), id >> 8, id & 0xff, 0, ...bytes]));
    if (code >= 0x80) throw new Error(`publish to ${topic}: ${reason(code)}`);
    return code;
  }

  receive(chunk) {
    const joined = new Uint8Array(this.buffer.length + chunk.length);
    joined.set(this.buffer);
    joined.set(chunk, this.buffer.length);
    let at = 0;
    while (joined.length - at >= 2) {
      let length = 0, multiplier = 1, i = at + 1, byte;
      do {
        if (i >= joined.length) { this.buffer = joined.slice(at); return; }
        byte = joined[i++];
        length += (byte & 0x7f) * multiplier;
        multiplier *= 128;
      } while (byte & 0x80);
      if (joined.length - i < length) break;
      this.handle(joined[at] >> 4, joined[at] & 0x0f, joined.subarray(i, i + length));
      at = i + length;
    }
    this.buffer = joined.slice(at);
  }

  /** A variable-byte integer at body[at]: [value, bytes used]. */
  static varint(body, at) {
    let value = 0, multiplier = 1, used = 0, byte;
    do { byte = body[at + used++]; value += (byte & 0x7f) * multiplier; multiplier *= 128; } while (byte & 0x80);
    return [value, used];
  }

  handle(type, flags, body) {
    switch (type) {
      case 2: { // CONNACK
        const code = body[1];
        if (!this.connected) return;
        if (code === 0) {
          this.connected.resolve();
          this.onState("connected", true);
          this.pinger = setInterval(() => { try { this.socket.send(packet(12, 0, [])); } catch { /* closing */ } }, 30000);
        } else this.connected.reject(new Error(`the broker refused the connection: ${reason(code)}`));
        this.connected = null;
        break;
      }
      case 3: { // PUBLISH
        const qos = (flags >> 1) & 3;
        const topicLength = (body[0] << 8) | body[1];
        const topic = decoder.decode(body.subarray(2, 2 + topicLength));
        let at = 2 + topicLength;
        let id = 0;
        if (qos > 0) { id = (body[at] << 8) | body[at + 1]; at += 2; }
        const [properties, used] = MqttClient.varint(body, at);
        at += used + properties;
        if (qos === 1) this.socket.send(packet(4, 0, [id >> 8, id & 0xff]));
        if (qos === 2) this.socket.send(packet(5, 0, [id >> 8, id & 0xff]));
        this.onMessage(topic, body.slice(at), (flags & 1) === 1);
        break;
      }
      case 6: { // PUBREL (of a QoS 2 message received): complete it
        this.socket.send(packet(7, 0, [body[0], body[1]]));
        break;
      }
      case 4: case 9: case 11: { // PUBACK, SUBACK, UNSUBACK: settle the request with its reason codes
        const id = (body[0] << 8) | body[1];
        let codes = [0];
        if (type === 4) codes = [body.length > 2 ? body[2] : 0];
        else {
          const [properties, used] = MqttClient.varint(body, 2);
          codes = Array.from(body.subarray(2 + used + properties));
        }
        this.pending.get(id)?.resolve(codes);
        this.pending.delete(id);
        break;
      }
      case 14: // DISCONNECT from the server, with its reason
        this.fail(`the broker disconnected: ${reason(body.length ? body[0] : 0)}`);
        break;
      default: // PINGRESP and anything else: nothing to do
        break;
    }
  }
}
