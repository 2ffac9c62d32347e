/* `tether keyprovider`: an ocicrypt keyprovider (the `cmd` kind).  One request on standard
 * input, one answer on standard output; a key is unwrapped only on the policy's allow. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../measure/measure.h"
#include "audit.h"
#include "core/base64.h"
#include "core/cleanup.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/trust.h"
#include "core/util.h"
#include "key.h"
#include "image/keyprovider.h"
#include "tether.h"

static const char usage[] =
    "Usage: tether keyprovider [OPTION]...\n"
    "Answer one ocicrypt keyprovider request (JSON on standard input, the answer on standard\n"
    "output), as skopeo, CRI-O and containerd's imgcrypt call a `cmd` key provider.\n"
    "  keywrap    (--encryption-key provider:tether:KEY_ID) seals the layer options with\n"
    "             KEY_ID of the key store (<keystore>/KEY_ID.key, 32 bytes)\n"
    "  keyunwrap  measures this host and the requesting process (tether's parent), asks the\n"
    "             policy (phase `keyprovider`), and opens the packet only on an allow\n"
    "\n"
    "  -p, --policy FILE    decide with this Lua policy (default: the configuration's\n"
    "                       `policy`, else the built-in default policy)\n"
    "  -o, --opa URL        ask the OPA server at URL instead\n"
    "  -c, --config FILE    node configuration (default: $TETHER_CONFIG, else\n"
    "                       " CONFIG_DEFAULT_PATH ")\n"
    "  -a, --audit FILE     append audit records to FILE (default: audit.path)\n"
    "  -h, --help           show this help\n"
    "\n"
    "Every answer is audited.  A refusal prints one line on standard error and nothing on\n"
    "standard output.  Exit status: 0 answered, 77 the policy denied, 125 an error.\n"
    "\n"
    "ocicrypt's configuration ($OCICRYPT_KEYPROVIDER_CONFIG):\n"
    "  {\"key-providers\": {\"tether\": {\"cmd\": {\"path\": \"/usr/bin/tether\",\n"
    "                                        \"args\": [\"keyprovider\"]}}}}\n"
    "Example:\n"
    "  skopeo copy --encryption-key provider:tether:app1 oci:plain:v1 oci:enc:v1\n";

struct kp {
    struct config cfg;
    const char *audit_path;
    const char *op; /* for records: "keywrap", "keyunwrap", or "unknown" */
};

/* Records a request that got no answer (a record that cannot be written is only warned of:
 * nothing was released). */
static void audit_failed(struct kp *k, const char *why)
{
    cleanup_error tether_error_t err = NULL;
    cleanup_json cJSON *rec = audit_record_new("keyprovider_failed");
    cJSON_AddStringToObject(rec, "op", k->op);
    cJSON_AddNumberToObject(rec, "requester_pid", getppid());
    cJSON_AddStringToObject(rec, "reason", why);
    if (audit_append(k->audit_path, rec, &err) < 0)
        log_warn("%s", err->msg);
}

static int fail(struct kp *k, const char *msg)
{
    log_error("keyprovider: %s", msg);
    audit_failed(k, msg);
    return EXIT_FAILED;
}

/* The request, read into secret memory: it may carry layer keys and private keys. */
static int read_request(struct secret **out, tether_error_t *err)
{
    if (secret_new(KEYPROVIDER_MAX_REQUEST + 1, out, err) < 0)
        return -1;
    struct secret *s = *out;
    size_t n = 0;
    for (;;) {
        ssize_t r = read(STDIN_FILENO, s->data + n, KEYPROVIDER_MAX_REQUEST + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return error_set(err, errno, "reading the request");
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > KEYPROVIDER_MAX_REQUEST)
            return error_set(err, 0, "the request is larger than %d bytes",
                             KEYPROVIDER_MAX_REQUEST);
    }
    s->len = n;
    return 0;
}

static int answer_wrap(struct kp *k, const struct keyprovider_request *req)
{
    cleanup_error tether_error_t err = NULL;
    cleanup_secret struct secret *key = NULL;
    if (keystore_read(k->cfg.keystore, req->key_id, ".key", KEY_BYTES, KEY_BYTES, &key, &err) < 0)
        return fail(k, err->msg);
    cleanup_free char *packet = NULL;
    if (keyprovider_packet_seal(req->key_id, key, req->optsdata, &packet, &err) < 0)
        return fail(k, err->msg);
    char sha[SHA256_HEX_LEN + 1];
    sha256_hex(packet, strlen(packet), sha);
    cleanup_json cJSON *rec = audit_record_new("key_wrap");
    cJSON_AddStringToObject(rec, "key_id", req->key_id);
    cJSON_AddStringToObject(rec, "packet_sha256", sha);
    cJSON_AddNumberToObject(rec, "requester_pid", getppid());
    if (audit_append(k->audit_path, rec, &err) < 0) {
        log_error("keyprovider: %s; not answering", err->msg);
        return EXIT_FAILED;
    }
    cleanup_free char *b64 = base64_encode(packet, strlen(packet));
    if (printf("{\"keywrapresults\":{\"annotation\":\"%s\"}}\n", b64) < 0 || fflush(stdout) != 0) {
        log_error("keyprovider: cannot write the answer");
        return EXIT_FAILED;
    }
    return 0;
}

/* The input of the keyprovider phase: host, and the request with the requesting process. */
static cJSON *unwrap_input(struct kp *k, const struct keyprovider_packet *p)
{
    cJSON *input =
        measure_input_build("keyprovider", measure_host_collect(k->cfg.labels), NULL, NULL, NULL);
    cJSON *kp = cJSON_AddObjectToObject(input, "keyprovider");
    cJSON_AddStringToObject(kp, "op", "keyunwrap");
    cJSON_AddStringToObject(kp, "key_id", p->key_id);
    cJSON_AddItemToObject(kp, "packet", keyprovider_packet_metadata(p));
    cJSON *requester = NULL;
    cleanup_error tether_error_t err = NULL;
    if (measure_process_collect(getppid(), &requester, &err) < 0) {
        log_warn("keyprovider: the requesting process: %s", err->msg);
        requester = cJSON_CreateNull();
    }
    cJSON_AddItemToObject(kp, "requester", requester);
    return input;
}

/* {"keyunwrapresults":{"optsdata":"<base64>"}}, built and written from secret memory. */
static int write_unwrapped(const struct secret *optsdata, tether_error_t *err)
{
    static const char head[] = "{\"keyunwrapresults\":{\"optsdata\":\"", tail[] = "\"}}\n";
    cleanup_secret struct secret *out = NULL;
    size_t b64 = base64_encoded_len(optsdata->len);
    if (secret_new(sizeof head + b64 + sizeof tail, &out, err) < 0)
        return -1;
    memcpy(out->data, head, sizeof head - 1);
    size_t n = sizeof head - 1;
    n += base64_encode_into(optsdata->data, optsdata->len, (char *)out->data + n);
    memcpy(out->data + n, tail, sizeof tail - 1);
    n += sizeof tail - 1;
    if (write_all(STDOUT_FILENO, out->data, n) < 0)
        return error_set(err, errno, "writing the answer");
    return 0;
}

static int answer_unwrap(struct kp *k, const struct keyprovider_request *req,
                         const char *policy_file, const char *opa_url)
{
    cleanup_error tether_error_t err = NULL;
    struct keyprovider_packet p;
    if (keyprovider_packet_parse(req->annotation, req->annotation_len, &p, &err) < 0)
        return fail(k, err->msg);
    int rc = EXIT_FAILED;
    cleanup_json cJSON *input = unwrap_input(k, &p);
    cleanup_policy struct policy *policy = NULL;
    struct decision d = {.ttl_s = -1};
    struct secret *key = NULL, *optsdata = NULL;
    cleanup_json cJSON *rec = NULL;
    cleanup_json cJSON *rel = NULL;
    if (engine_open(&k->cfg, policy_file, opa_url, &policy, &err) < 0) {
        rc = fail(k, err->msg);
        goto out;
    }
    policy_decide(policy, input, &d);
    rec = audit_decision_record("keyprovider", policy, &d, input);
    if (audit_append(k->audit_path, rec, &err) < 0) {
        log_error("keyprovider: %s; not answering", err->msg);
        goto out;
    }
    if (!d.allow) {
        cleanup_free char *why = decision_reasons_joined(&d);
        log_error("keyprovider: denied: %s", why);
        rc = EXIT_DENIED;
        goto out;
    }
    const char *source = "decision";
    if (key_from_decision(&d, &key, &err) < 0) {
        rc = fail(k, err->msg);
        goto out;
    }
    if (key == NULL) {
        source = "keystore";
        if (keystore_read(k->cfg.keystore, p.key_id, ".key", KEY_BYTES, KEY_BYTES, &key, &err) <
            0) {
            rc = fail(k, err->msg);
            goto out;
        }
    }
    if (keyprovider_packet_open(&p, key, &optsdata, &err) < 0) {
        rc = fail(k, err->msg);
        goto out;
    }
    rel = audit_record_new("key_release");
    cJSON_AddStringToObject(rel, "phase", "keyprovider");
    cJSON_AddStringToObject(rel, "key_id", p.key_id);
    cJSON_AddStringToObject(rel, "packet_sha256", p.sha256);
    cJSON_AddNumberToObject(rel, "requester_pid", getppid());
    cJSON_AddStringToObject(rel, "source", source);
    cJSON_AddStringToObject(rel, "engine", policy->ops->engine);
    if (audit_append(k->audit_path, rel, &err) < 0) {
        log_error("keyprovider: %s; not answering", err->msg);
        goto out;
    }
    if (write_unwrapped(optsdata, &err) < 0) {
        log_error("keyprovider: %s", err->msg);
        goto out;
    }
    rc = 0;
out:
    secret_free(optsdata);
    secret_free(key);
    decision_clear(&d);
    keyprovider_packet_clear(&p);
    return rc;
}

int cmd_keyprovider(int argc, char **argv)
{
    static const struct option opts[] = {
        {"policy", required_argument, NULL, 'p'}, {"config", required_argument, NULL, 'c'},
        {"opa", required_argument, NULL, 'o'},    {"audit", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *policy_file = NULL, *opa_url = NULL, *config_file = NULL, *audit_file = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "p:c:o:a:h", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            policy_file = optarg;
            break;
        case 'c':
            config_file = optarg;
            break;
        case 'o':
            opa_url = optarg;
            break;
        case 'a':
            audit_file = optarg;
            break;
        case 'h':
            return cli_usage(usage, 0);
        default:
            return cli_usage("Try 'tether keyprovider --help' for more information.\n", 1);
        }
    }
    if (optind < argc) {
        log_error("keyprovider: unexpected argument `%s`", argv[optind]);
        return cli_usage("Try 'tether keyprovider --help' for more information.\n", 1);
    }

    cleanup_error tether_error_t err = NULL;
    struct kp k = {.op = "unknown"};
    if (config_load(config_file, &k.cfg, &err) < 0) {
        log_error("keyprovider: %s", err->msg);
        config_clear(&k.cfg);
        return EXIT_FAILED;
    }
    k.audit_path = audit_file ? audit_file : k.cfg.audit_path;
    cleanup_secret struct secret *text = NULL;
    struct keyprovider_request req = {0};
    int rc;
    /* Every answer needs libcrypto (the request's base64, the JWE): loaded first, so that
     * a node without it records the failure as any other. */
    if (crypto_load(&err) < 0 || read_request(&text, &err) < 0 ||
        keyprovider_request_parse((const char *)text->data, text->len, &req, &err) < 0)
        rc = fail(&k, err->msg);
    else if (req.op == KEYPROVIDER_WRAP) {
        k.op = "keywrap";
        rc = answer_wrap(&k, &req);
    } else {
        k.op = "keyunwrap";
        rc = answer_unwrap(&k, &req, policy_file, opa_url);
    }
    keyprovider_request_clear(&req);
    config_clear(&k.cfg);
    return rc;
}
