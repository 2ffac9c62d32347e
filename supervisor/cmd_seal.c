/* `tether seal` and `tether inspect`: making a sealed workload, and reading its header. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cleanup.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/secret.h"
#include "core/util.h"
#include "rootfs.h"
#include "seal.h"
#include "tether.h"

static const char seal_usage[] =
    "Usage: tether seal --key KEYFILE --key-id ID [OPTION]... -o OUT INPUT\n"
    "Encrypt the executable (or, with --entrypoint, the directory tree) INPUT into the sealed\n"
    "workload OUT: AES-256-GCM in 64 KiB chunks, the header, with the embedded policy,\n"
    "authenticated with every chunk (doc/sealed-format.md).  `tether run OUT`\n"
    "runs it where the node's policy and the embedded policy both allow, with the key the\n"
    "node releases: from OPA (decision.key.value) or from <keystore>/ID.key.\n"
    "\n"
    "  -k, --key KEYFILE    the 32-byte key (make one: openssl rand -out KEYFILE 32)\n"
    "  -i, --key-id ID      the key's name on the nodes ([A-Za-z0-9._-], up to 255)\n"
    "  -p, --policy FILE    a Lua policy to embed: it must allow too, and cannot be removed\n"
    "                       or swapped without breaking decryption\n"
    "  -s, --sign PEM       sign with this Ed25519 private key\n"
    "                       (make one: openssl genpkey -algorithm ed25519 -out sign.pem;\n"
    "                       its public half for trusted_signers: openssl pkey -in sign.pem\n"
    "                       -pubout -out sign.pub.pem)\n"
    "  -e, --entrypoint P   INPUT is a directory: a root file system to seal whole, and P\n"
    "                       (absolute, inside it) is the program to start in it\n"
    "  -o, --output OUT     the sealed file to write (not overwritten if it exists)\n"
    "  -f, --format-version N\n"
    "                       2 (the default): the digest is hashed on every CPU at launch,\n"
    "                       and a workload has no exe.sha256, only sealed.digest;\n"
    "                       1: for nodes whose tether reads only version 1 (it refuses\n"
    "                       2 with \"sealed format version 2 is not supported\")\n"
    "  -h, --help           show this help\n";

static int load_key(const char *file, struct secret **out, tether_error_t *err)
{
    cleanup_close int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return error_set(err, errno, "key `%s`", file);
    if (st.st_size != 32)
        return error_set(err, 0, "key `%s`: %lld bytes, not 32 (openssl rand -out %s 32)", file,
                         (long long)st.st_size, file);
    if (secret_new(32, out, err) < 0)
        return -1;
    if (pread(fd, (*out)->data, 32, 0) != 32) {
        secret_free(*out);
        *out = NULL;
        return error_set(err, errno ? errno : EIO, "key `%s`", file);
    }
    return 0;
}

int cmd_seal(int argc, char **argv)
{
    static const struct option opts[] = {
        {"key", required_argument, NULL, 'k'},
        {"key-id", required_argument, NULL, 'i'},
        {"policy", required_argument, NULL, 'p'},
        {"sign", required_argument, NULL, 's'},
        {"entrypoint", required_argument, NULL, 'e'},
        {"output", required_argument, NULL, 'o'},
        {"format-version", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *key_file = NULL, *policy_file = NULL, *sign_file = NULL, *out_file = NULL;
    struct seal_options o = {0};
    cleanup_error tether_error_t err = NULL;
    int c;
    int64_t version;
    while ((c = getopt_long(argc, argv, "k:i:p:s:e:o:f:h", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            key_file = optarg;
            break;
        case 'i':
            o.key_id = optarg;
            break;
        case 'p':
            policy_file = optarg;
            break;
        case 's':
            sign_file = optarg;
            break;
        case 'e':
            o.entrypoint = optarg;
            break;
        case 'o':
            out_file = optarg;
            break;
        case 'f':
            if (parse_int64(optarg, SEAL_VERSION_MIN, SEAL_VERSION, &version) < 0) {
                log_error("seal: --format-version `%s`: %d or %d", optarg, SEAL_VERSION_MIN,
                          SEAL_VERSION);
                return cli_usage("Try 'tether seal --help' for more information.\n", 1);
            }
            o.version = (uint16_t)version;
            break;
        case 'h':
            return cli_usage(seal_usage, 0);
        default:
            return cli_usage("Try 'tether seal --help' for more information.\n", 1);
        }
    }
    if (key_file == NULL || o.key_id == NULL || out_file == NULL || argc - optind != 1) {
        log_error("seal: --key, --key-id, -o and one INPUT are required");
        return cli_usage("Try 'tether seal --help' for more information.\n", 1);
    }
    /* Before the output exists: a libcrypto that cannot be loaded leaves nothing behind. */
    if (crypto_load(&err) < 0) {
        log_error("seal: %s", err->msg);
        return EXIT_FAILED;
    }
    const char *input = argv[optind];
    cleanup_close int in = open(input, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    char magic[2];
    if (in < 0 || fstat(in, &st) < 0) {
        log_error("seal: `%s`: %s", input, strerror(errno));
        return EXIT_FAILED;
    }
    if (S_ISDIR(st.st_mode)) {
        /* A root file system: packed into a tar stream in memory, then sealed. */
        int tar = -1;
        if (rootfs_pack(input, o.entrypoint, &tar, &err) < 0) {
            log_error("seal: %s", err->msg);
            return EXIT_FAILED;
        }
        close(in);
        in = tar;
        fstat(in, &st); /* the tar stream's size, for the progress display */
    } else if (o.entrypoint != NULL) {
        log_error("seal: --entrypoint goes with a directory tree, not a file");
        return EXIT_FAILED;
    } else if (S_ISREG(st.st_mode) && pread(in, magic, 2, 0) == 2 && memcmp(magic, "#!", 2) == 0) {
        /* A script names its interpreter by path, which a memfd cannot give it. */
        log_error("seal: `%s` is a script: it cannot run from memory; seal a tree with its "
                  "interpreter (--entrypoint) instead",
                  input);
        return EXIT_FAILED;
    } else if (!S_ISREG(st.st_mode)) {
        log_error("seal: `%s` is not a regular file", input);
        return EXIT_FAILED;
    }

    cleanup_secret struct secret *key = NULL;
    if (load_key(key_file, &key, &err) < 0) {
        log_error("seal: %s", err->msg);
        return EXIT_FAILED;
    }
    cleanup_free char *policy = NULL;
    if (policy_file != NULL) {
        if (read_file(policy_file, 1 << 20, &policy, &o.policy_len, &err) < 0) {
            log_error("seal: policy: %s", err->msg);
            return EXIT_FAILED;
        }
        /* Refuse a policy that would never load where it runs. */
        struct policy *p = NULL;
        if (policy_lua_open(policy_file, policy, o.policy_len, NULL, &p, &err) < 0) {
            log_error("seal: %s", err->msg);
            return EXIT_FAILED;
        }
        policy_free(p);
        o.policy = policy;
    }
    EVP_PKEY *signer = NULL;
    if (sign_file != NULL) {
        FILE *f = fopen(sign_file, "re");
        signer = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
        if (f)
            fclose(f);
        if (signer == NULL || EVP_PKEY_get_id(signer) != EVP_PKEY_ED25519) {
            EVP_PKEY_free(signer);
            log_error("seal: --sign `%s` is not an Ed25519 private key in PEM", sign_file);
            return EXIT_FAILED;
        }
        o.signer = signer;
    }
    o.progress = isatty(STDERR_FILENO) && st.st_size > (8 << 20);

    int out = open(out_file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (out < 0) {
        EVP_PKEY_free(signer);
        log_error("seal: `%s`: %s", out_file, strerror(errno));
        return EXIT_FAILED;
    }
    int rc = seal_write(in, out, key, &o, &err);
    if (rc == 0 && fsync(out) < 0)
        rc = error_set(&err, errno, "`%s`", out_file);
    close(out);
    EVP_PKEY_free(signer);
    if (rc < 0) {
        unlink(out_file);
        log_error("seal: %s", err->msg);
        return EXIT_FAILED;
    }
    return 0;
}

static const char inspect_usage[] =
    "Usage: tether inspect FILE\n"
    "Print the header of a sealed workload as JSON: format, type, cipher, chunk size, sizes,\n"
    "key id, entrypoint, the embedded policy and its sha256, the digest over header and\n"
    "ciphertext, and the signer.  Nothing secret is in a header.  Exit 0, or 125 when FILE\n"
    "is not a sealed workload (or is damaged).\n";

int cmd_inspect(int argc, char **argv)
{
    if (argc != 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
        return cli_usage(inspect_usage, argc != 2);
    cleanup_error tether_error_t err = NULL;
    cleanup_close int fd = open(argv[1], O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        log_error("inspect: `%s`: %s", argv[1], strerror(errno));
        return EXIT_FAILED;
    }
    struct sealed s;
    if (seal_open(fd, NULL, false, &s, &err) < 0) {
        log_error("inspect: `%s`: %s", argv[1], err->msg);
        return EXIT_FAILED;
    }
    cleanup_json cJSON *j = cJSON_CreateObject();
    char hex[65];
    cJSON_AddNumberToObject(j, "format_version", s.h.version);
    cJSON_AddStringToObject(j, "type", s.h.type == SEAL_TYPE_ROOTFS ? "rootfs" : "executable");
    cJSON_AddStringToObject(j, "cipher", "AES-256-GCM");
    cJSON_AddNumberToObject(j, "chunk_size", s.h.chunk_size);
    cJSON_AddNumberToObject(j, "chunks", (double)seal_chunks(&s.h));
    cJSON_AddNumberToObject(j, "plaintext_size", (double)s.h.plain_size);
    cJSON_AddStringToObject(j, "key_id", s.h.key_id);
    cJSON_AddItemToObject(j, "entrypoint",
                          json_string_or_null(*s.h.entrypoint ? s.h.entrypoint : NULL));
    hex_encode(s.h.policy_sha256, 32, hex);
    cJSON_AddStringToObject(j, "policy_sha256", hex);
    cJSON_AddItemToObject(j, "policy", json_string_or_null(s.h.policy_len ? s.h.policy : NULL));
    hex_encode(s.h.header_sha256, 32, hex);
    cJSON_AddStringToObject(j, "header_sha256", hex);
    cJSON_AddStringToObject(j, "digest", s.digest);
    cJSON_AddBoolToObject(j, "signed", s.has_signature);
    cJSON_AddItemToObject(j, "signer", json_string_or_null(s.has_signature ? s.signer : NULL));
    seal_close(&s);
    cleanup_free char *text = cJSON_Print(j);
    printf("%s\n", text);
    return 0;
}
