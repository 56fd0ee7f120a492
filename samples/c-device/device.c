/*
 * A Trellis device in C with libmosquitto (Debian: libmosquitto-dev).
 *
 * It connects over MQTT/TLS with the certificate of a device folder made by
 * `trellis provision --thing NAME --out DIR`, publishes a temperature on devices/NAME/telemetry
 * every second, and follows its shadow: each delta on $aws/things/NAME/shadow/update/delta is
 * printed and its state reported back on $aws/things/NAME/shadow/update.
 *
 * Build: cc -Wall -O2 -o device device.c -lmosquitto   (or: make)
 * Run:   ./device DIR [SECONDS]    (DIR as trellis provision wrote it; SECONDS 0 = until Ctrl-C)
 */
#include <mosquitto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char thing[129];
static char delta_topic[300];
static char update_topic[300];
static volatile sig_atomic_t running = 1;
static volatile sig_atomic_t failed = 0;

static void stop(int signal_number) { (void)signal_number; running = 0; }

/* Reads a whole small file (device.json) into a NUL-terminated buffer, or returns NULL. */
static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char text[4096];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    return text;
}

/* The string or number after "key": in a flat JSON object such as device.json. */
static int json_member(const char *json, const char *key, char *out, size_t size)
{
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\"", key);
    const char *at = strstr(json, pattern);
    if (!at) return -1;
    at = strchr(at + strlen(pattern), ':');
    if (!at) return -1;
    at++;
    while (*at == ' ') at++;
    size_t n = 0;
    if (*at == '"') {
        at++;
        while (at[n] && at[n] != '"' && n + 1 < size) n++;
    } else {
        while (at[n] && strchr("0123456789", at[n]) && n + 1 < size) n++;
    }
    memcpy(out, at, n);
    out[n] = '\0';
    return n > 0 ? 0 : -1;
}

/* The object that follows "state": in a delta document, braces matched outside strings. */
static int state_object(const char *json, int length, const char **start, int *size)
{
    const char *at = strstr(json, "\"state\"");
    if (!at) return -1;
    at = strchr(at, '{');
    if (!at) return -1;
    int depth = 0, in_string = 0;
    for (const char *p = at; p < json + length; p++) {
        if (in_string) {
            if (*p == '\\') p++;
            else if (*p == '"') in_string = 0;
        } else if (*p == '"') in_string = 1;
        else if (*p == '{') depth++;
        else if (*p == '}' && --depth == 0) {
            *start = at;
            *size = (int)(p - at + 1);
            return 0;
        }
    }
    return -1;
}

static void on_connect(struct mosquitto *mosq, void *userdata, int rc)
{
    (void)userdata;
    if (rc != 0) {
        fprintf(stderr, "device: the broker refused the connection: %s\n", mosquitto_connack_string(rc));
        failed = 1;
        running = 0;
        return;
    }
    printf("device: connected as %s\n", thing);
    fflush(stdout);
    mosquitto_subscribe(mosq, NULL, delta_topic, 1);
}

static void on_subscribe(struct mosquitto *mosq, void *userdata, int mid, int count, const int *granted)
{
    (void)mosq; (void)userdata; (void)mid;
    for (int i = 0; i < count; i++) {
        if (granted[i] == 0x80) {
            fprintf(stderr, "device: the subscription to %s was refused (the policy must allow iot:Subscribe on it)\n", delta_topic);
            failed = 1;
            running = 0;
            return;
        }
    }
    printf("device: following %s\n", delta_topic);
    fflush(stdout);
}

static void on_message(struct mosquitto *mosq, void *userdata, const struct mosquitto_message *message)
{
    (void)userdata;
    if (strcmp(message->topic, delta_topic) != 0) return;
    char *json = malloc((size_t)message->payloadlen + 1);
    if (!json) return;
    memcpy(json, message->payload, (size_t)message->payloadlen);
    json[message->payloadlen] = '\0';
    printf("device: delta %s\n", json);
    fflush(stdout);

    /* A real device would act on each member (turn a relay, set a PWM duty) before reporting. */
    const char *state;
    int size;
    if (state_object(json, message->payloadlen, &state, &size) == 0) {
        char report[4096];
        int n = snprintf(report, sizeof report, "{\"state\":{\"reported\":%.*s}}", size, state);
        if (n > 0 && n < (int)sizeof report) {
            mosquitto_publish(mosq, NULL, update_topic, n, report, 1, false);
            printf("device: reported %.*s\n", size, state);
            fflush(stdout);
        }
    }
    free(json);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s DEVICE_FOLDER [SECONDS]\n  DEVICE_FOLDER: made by `trellis provision --thing NAME --out DIR`\n", argv[0]);
        return 2;
    }
    const char *folder = argv[1];
    int seconds = argc > 2 ? atoi(argv[2]) : 0;

    char path[1024], host[256], port_text[16], cert[1024], key[1024], ca[1024];
    snprintf(path, sizeof path, "%s/device.json", folder);
    const char *description = read_file(path);
    if (!description || json_member(description, "thingName", thing, sizeof thing) != 0
        || json_member(description, "host", host, sizeof host) != 0 || json_member(description, "port", port_text, sizeof port_text) != 0) {
        fprintf(stderr, "device: %s is missing or incomplete: make the folder with `trellis provision --thing NAME --out %s`\n", path, folder);
        return 2;
    }
    snprintf(cert, sizeof cert, "%s/%s.cert.pem", folder, thing);
    snprintf(key, sizeof key, "%s/%s.private.key", folder, thing);
    snprintf(ca, sizeof ca, "%s/ca.pem", folder);
    snprintf(delta_topic, sizeof delta_topic, "$aws/things/%s/shadow/update/delta", thing);
    snprintf(update_topic, sizeof update_topic, "$aws/things/%s/shadow/update", thing);
    char telemetry_topic[300];
    snprintf(telemetry_topic, sizeof telemetry_topic, "devices/%s/telemetry", thing);

    signal(SIGINT, stop);
    signal(SIGTERM, stop);
    mosquitto_lib_init();
    struct mosquitto *mosq = mosquitto_new(thing, true, NULL); /* client id = the thing's name */
    if (!mosq) {
        fprintf(stderr, "device: out of memory\n");
        return 1;
    }
    mosquitto_connect_callback_set(mosq, on_connect);
    mosquitto_subscribe_callback_set(mosq, on_subscribe);
    mosquitto_message_callback_set(mosq, on_message);
    int rc = mosquitto_tls_set(mosq, ca, NULL, cert, key, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "device: cannot load %s, %s or %s: %s\n", ca, cert, key, mosquitto_strerror(rc));
        return 1;
    }
    rc = mosquitto_connect(mosq, host, atoi(port_text), 30);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "device: cannot connect to %s:%s: %s\n", host, port_text, mosquitto_strerror(rc));
        return 1;
    }
    mosquitto_loop_start(mosq);

    time_t started = time(NULL);
    double temperature = 21.0;
    while (running && (seconds == 0 || time(NULL) - started < seconds)) {
        char reading[128];
        temperature += ((double)(rand() % 21) - 10.0) / 100.0;
        int n = snprintf(reading, sizeof reading, "{\"temperature\":%.2f,\"uptime\":%ld}", temperature, (long)(time(NULL) - started));
        mosquitto_publish(mosq, NULL, telemetry_topic, n, reading, 1, false);
        sleep(1);
    }

    mosquitto_disconnect(mosq);
    mosquitto_loop_stop(mosq, false);
    mosquitto_destroy(mosq);
    mosquitto_lib_cleanup();
    return failed ? 1 : 0;
}
