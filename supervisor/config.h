/* The node configuration (DESIGN.md, "Node configuration"). */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "../measure/measure.h"
#include "core/error.h"

#define CONFIG_DEFAULT_PATH "/etc/tether/tether.json"
#define AUDIT_DEFAULT_PATH "/var/log/tether/audit.jsonl"
#define SYSLOG_SOCKET_DEFAULT "/dev/log"
#define PODMAN_STORAGE_DEFAULT "/var/lib/containers/storage"

struct config {
    char *path; /* the file read, or NULL when none was */
    cJSON *labels;
    char *policy;
    struct {
        char *url, *path, *bearer_token_file, *ca_file, *client_cert, *client_key;
        int64_t connect_timeout_ms, timeout_ms, max_response_bytes, retries;
        int64_t server_uid; /* -1 when not given */
        bool fail_open;
    } opa;
    char *audit_path;
    bool audit_syslog;         /* each record also to syslog, at audit_syslog_socket */
    char *audit_syslog_socket; /* default /dev/log */
    char *metrics_textfile;    /* Prometheus text for node_exporter's textfile collector */
    char *keystore;
    cJSON *trusted_signers;
    bool require_sealed;
    bool hash_cache; /* remember hashes of root's unchanged files (measure/hashcache.c) */
    cJSON *trusted_image_signers; /* PEM public keys that sign images (measure/imgsig.h) */
    bool require_signed_images;
    struct {
        int64_t grace_s, fail_grace_s, heartbeat_s, restart_max, restart_backoff_ms;
        char *cgroup; /* "auto" (the default) or "required" */
        bool cgroup_required;
        char *systemd_slice; /* the Slice of a systemd scope, or NULL for systemd's default */
    } monitor;
    struct measure_container_sources container;
    struct {
        char *key;          /* <keystore>/<key>.pem: the node's ES256 signing key */
        char *issuer;       /* the tokens' iss; default "tether://<hostname>" */
        char *trust_domain; /* of the default SPIFFE subject; default "tether.local" */
    } identity;
};

/* Reads the configuration: path when given, else $TETHER_CONFIG, else the default file,
 * whose absence alone is not an error.  Errors name the file and the key. */
int config_load(const char *path, struct config *cfg, tether_error_t *err);
/* The same from a text (for tests and fuzzing); name is used in messages. */
int config_parse(const char *name, const char *text, size_t len, struct config *cfg,
                 tether_error_t *err);
void config_clear(struct config *cfg);
