/* The OPA engine: POST <url>/v1/data/<path> with {"input": ...}, as OPA's REST Data API
 * documents it, so that a stock OPA deployment answers.  Every request has a connect
 * timeout, a total timeout and a response size cap; TLS verification is always on; plain
 * HTTP only to loopback; no redirects, no proxies.  libcurl's own advice
 * (libcurl-security.md) is followed throughout. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../supervisor/core/cleanup.h"
#include "../supervisor/core/secret.h"
#include "../supervisor/core/util.h"
#include "policy.h"

#define TOKEN_MAX 8192

struct opa_policy {
    struct policy base;
    CURL *curl;
    struct curl_slist *headers; /* holds the bearer token: wiped before it is freed */
    char *endpoint;             /* the URL curl is given */
    char *unix_socket;
    char *shown_url; /* without credentials */
    char *path;
    long connect_timeout_ms, timeout_ms, retries;
    size_t max_response;
};

struct body {
    char *data;
    size_t len, cap, max;
    bool over;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct body *b = ud;
    size_t n = size * nmemb;
    if (n > b->max - b->len) {
        b->over = true;
        return 0; /* makes curl stop with CURLE_WRITE_ERROR */
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = xmalloc(cap);
        if (b->data != NULL) {
            memcpy(p, b->data, b->len);
            OPENSSL_cleanse(b->data, b->cap); /* the answer may hold a key */
            free(b->data);
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static void body_wipe(struct body *b)
{
    if (b->data != NULL) {
        OPENSSL_cleanse(b->data, b->cap);
        free(b->data);
    }
    memset(b, 0, sizeof *b);
}

static bool is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (strcmp(host, "localhost") == 0)
        return true; /* curl answers it from 127.0.0.1 and ::1 without asking DNS */
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    size_t n = strlen(host);
    if (n > 2 && host[0] == '[' && host[n - 1] == ']') {
        char inner[64];
        if (n - 2 >= sizeof inner)
            return false;
        memcpy(inner, host + 1, n - 2);
        inner[n - 2] = '\0';
        return inet_pton(AF_INET6, inner, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
    }
    return false;
}

char *policy_opa_redact_url(const char *url)
{
    if (strncmp(url, "unix://", 7) == 0)
        return xstrdup(url);
    CURLU *u = curl_url();
    char *out = NULL;
    if (u != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK) {
        curl_url_set(u, CURLUPART_USER, NULL, 0);
        curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
        curl_url_set(u, CURLUPART_QUERY, NULL, 0);
        curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0);
        char *s = NULL;
        if (curl_url_get(u, CURLUPART_URL, &s, 0) == CURLUE_OK) {
            out = xstrdup(s);
            curl_free(s);
        }
    }
    curl_url_cleanup(u);
    return out ? out : xstrdup("(unparsable URL)");
}

/* The decision path: segments of [A-Za-z0-9_.-], no empty or dot-only segment. */
static bool path_valid(const char *p)
{
    if (*p == '\0')
        return false;
    for (const char *seg = p; *seg;) {
        size_t n = strcspn(seg, "/");
        if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return false;
        for (size_t i = 0; i < n; i++)
            if (!(isalnum((unsigned char)seg[i]) || strchr("_.-", seg[i]) != NULL))
                return false;
        seg += n;
        if (*seg == '/')
            seg++;
    }
    return true;
}

/* The bearer token: from a file only (never argv or the environment), which nobody but its
 * owner may read. */
static int read_token(const char *file, struct secret **out, tether_error_t *err)
{
    cleanup_close int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return error_set(err, errno, "opa.bearer_token_file `%s`", file);
    if (st.st_mode & 0077)
        return error_set(err, 0, "opa.bearer_token_file `%s` may be read by others (mode %04o)",
                         file, st.st_mode & 07777);
    if (secret_new(TOKEN_MAX + 1, out, err) < 0)
        return -1;
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, (*out)->data + n, TOKEN_MAX + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n > TOKEN_MAX)
            break;
    }
    while (n > 0 && ((*out)->data[n - 1] == '\n' || (*out)->data[n - 1] == '\r'))
        n--;
    if (n == 0 || n > TOKEN_MAX) {
        secret_free(*out);
        *out = NULL;
        return error_set(err, 0, "opa.bearer_token_file `%s`: %s", file,
                         n ? "longer than 8 KiB" : "empty");
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (*out)->data[i];
        if (ch < 0x21 || ch > 0x7e) {
            secret_free(*out);
            *out = NULL;
            return error_set(err, 0,
                             "opa.bearer_token_file `%s`: not a token (a byte that is "
                             "not printable)",
                             file);
        }
    }
    (*out)->len = n;
    return 0;
}

static void opa_free(struct policy *p)
{
    struct opa_policy *op = (struct opa_policy *)p;
    for (struct curl_slist *h = op->headers; h != NULL; h = h->next)
        OPENSSL_cleanse(h->data, strlen(h->data));
    curl_slist_free_all(op->headers);
    if (op->curl != NULL)
        curl_easy_cleanup(op->curl);
    free(op->endpoint);
    free(op->unix_socket);
    free(op->shown_url);
    free(op->path);
    free(op);
}

static cJSON *engine_info(const struct opa_policy *op)
{
    cJSON *info = cJSON_CreateObject();
    cJSON_AddStringToObject(info, "url", op->shown_url);
    cJSON_AddStringToObject(info, "path", op->path);
    return info;
}

static bool connection_failed(CURLcode rc, CURL *curl)
{
    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
        return true;
    /* A connection that broke before any answer (OPA went away mid-request): no answer. */
    long status = 0;
    if ((rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR || rc == CURLE_GOT_NOTHING) &&
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status == 0)
        return true;
    /* A timeout before any connection was made: nobody there to answer. */
    curl_off_t connected = 0;
    return rc == CURLE_OPERATION_TIMEDOUT &&
           curl_easy_getinfo(curl, CURLINFO_CONNECT_TIME_T, &connected) == CURLE_OK &&
           connected == 0;
}

static int opa_evaluate(struct policy *p, const cJSON *input, cJSON **doc, cJSON **info,
                        tether_error_t *err)
{
    struct opa_policy *op = (struct opa_policy *)p;
    cleanup_json cJSON *req = cJSON_CreateObject();
    cJSON_AddItemReferenceToObject(req, "input", (cJSON *)input);
    cleanup_free char *payload = json_print(req);

    struct body body = {.max = op->max_response};
    char errbuf[CURL_ERROR_SIZE];
    CURL *c = op->curl;
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(payload));
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);

    CURLcode rc;
    for (long attempt = 0;; attempt++) {
        body_wipe(&body);
        body.max = op->max_response;
        errbuf[0] = '\0';
        rc = curl_easy_perform(c);
        /* Retry what never reached OPA; anything OPA answered is its answer. */
        if (rc == CURLE_OK || !connection_failed(rc, c) || attempt >= op->retries)
            break;
        usleep(100 * 1000);
    }
    *info = engine_info(op);
    if (rc != CURLE_OK) {
        bool over = body.over || rc == CURLE_FILESIZE_EXCEEDED;
        body_wipe(&body);
        if (over)
            return error_set(err, 0, "OPA `%s`: the answer is larger than %zu bytes", op->shown_url,
                             op->max_response);
        int code = connection_failed(rc, c) ? POLICY_UNREACHABLE : EPROTO;
        error_set(err, 0, "OPA `%s`: %s", op->shown_url,
                  errbuf[0] ? errbuf : curl_easy_strerror(rc));
        (*err)->code = code;
        return -1;
    }

    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    cJSON *answer_info = NULL;
    int r = policy_opa_parse_answer(status, body.data ? body.data : "", body.len, op->shown_url,
                                    op->path, doc, &answer_info, err);
    body_wipe(&body);
    if (answer_info != NULL) {
        cJSON_Delete(*info);
        *info = answer_info;
    }
    return r;
}

int policy_opa_parse_answer(long status, const char *body, size_t len, const char *url,
                            const char *path, cJSON **result, cJSON **info, tether_error_t *err)
{
    *result = NULL;
    *info = NULL;
    cleanup_json cJSON *answer = NULL;
    cleanup_error tether_error_t perr = NULL;
    int parsed = json_parse(body, len, &answer, &perr);
    if (status != 200) {
        /* OPA's error document: {"code": "...", "message": "..."} */
        const char *ecode = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(answer, "code"));
        const char *emsg =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(answer, "message"));
        return error_set(err, 0, "OPA `%s` answered HTTP %ld%s%s%s%.200s", url, status,
                         ecode ? " " : "", ecode ? ecode : "", emsg ? ": " : "", emsg ? emsg : "");
    }
    if (parsed < 0)
        return error_set(err, 0, "OPA `%s`: the answer is %s", url, perr->msg);
    if (!cJSON_IsObject(answer))
        return error_set(err, 0, "OPA `%s`: the answer is not a JSON object", url);
    *info = cJSON_CreateObject();
    cJSON_AddStringToObject(*info, "url", url);
    cJSON_AddStringToObject(*info, "path", path);
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(answer, "decision_id"));
    if (id != NULL)
        cJSON_AddStringToObject(*info, "decision_id", id);
    cJSON *res = cJSON_DetachItemFromObjectCaseSensitive(answer, "result");
    if (res == NULL)
        return error_set(err, 0, "OPA `%s`: the decision `%s` is undefined (no `result`)", url,
                         path);
    *result = res;
    return 0;
}

/* The parent's connection (and TLS session) stay the parent's: the child talks over a
 * handle of its own, with the same options, and never closes the parent's. */
static void opa_forked(struct policy *p)
{
    struct opa_policy *op = (struct opa_policy *)p;
    CURL *fresh = curl_easy_duphandle(op->curl);
    if (fresh != NULL)
        op->curl = fresh;
}

static const struct policy_ops opa_ops = {
    .engine = "opa",
    .evaluate = opa_evaluate,
    .free = opa_free,
    .forked = opa_forked,
};

static int setup_curl(struct opa_policy *op, const struct opa_options *o, struct secret *token,
                      tether_error_t *err)
{
    op->curl = curl_easy_init();
    if (op->curl == NULL)
        return error_set(err, 0, "opa: cannot initialise libcurl");
    CURL *c = op->curl;
    op->headers = curl_slist_append(NULL, "Content-Type: application/json");
    op->headers = curl_slist_append(op->headers, "Accept: application/json");
    if (token != NULL) {
        size_t n = token->len + sizeof "Authorization: Bearer ";
        struct secret *line;
        if (secret_new(n, &line, err) < 0)
            return -1;
        snprintf((char *)line->data, n, "Authorization: Bearer %.*s", (int)token->len,
                 (const char *)token->data);
        op->headers = curl_slist_append(op->headers, (const char *)line->data);
        secret_free(line);
    }
    CURLcode rc = CURLE_OK;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(c, opt, val);                                                    \
    } while (0)
    SET(CURLOPT_URL, op->endpoint);
    if (op->unix_socket != NULL)
        SET(CURLOPT_UNIX_SOCKET_PATH, op->unix_socket);
    SET(CURLOPT_HTTPHEADER, op->headers);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_PROXY, ""); /* no proxy from the environment may stand in for OPA */
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
    SET(CURLOPT_TIMEOUT_MS, o->timeout_ms);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_response_bytes);
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (o->ca_file != NULL) {
        /* The given CA alone: not the system's public CAs besides. */
        SET(CURLOPT_CAINFO, o->ca_file);
        SET(CURLOPT_CAPATH, NULL);
    }
    if (o->client_cert != NULL)
        SET(CURLOPT_SSLCERT, o->client_cert);
    if (o->client_key != NULL)
        SET(CURLOPT_SSLKEY, o->client_key);
    SET(CURLOPT_WRITEFUNCTION, on_data);
    SET(CURLOPT_USERAGENT, "tether/0.1.0");
#undef SET
    if (rc != CURLE_OK)
        return error_set(err, 0, "opa: libcurl: %s", curl_easy_strerror(rc));
    return 0;
}

int policy_opa_open(const struct opa_options *o, struct policy **out, tether_error_t *err)
{
    static bool curl_ready;
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return error_set(err, 0, "opa: cannot initialise libcurl");
        curl_ready = true;
    }
    const char *path = o->path ? o->path : "tether/decision";
    while (*path == '/')
        path++;
    if (!path_valid(path))
        return error_set(err, 0,
                         "opa.path `%s` is not a decision path (segments of letters, "
                         "digits, _ . -)",
                         o->path);
    if ((o->client_cert == NULL) != (o->client_key == NULL))
        return error_set(err, 0, "opa.client_cert and opa.client_key go together");

    struct opa_policy *op = xcalloc(1, sizeof *op);
    op->base.ops = &opa_ops;
    op->shown_url = policy_opa_redact_url(o->url);
    op->base.source = xstrdup(op->shown_url);
    op->path = xstrdup(path);
    op->max_response = (size_t)o->max_response_bytes;
    op->retries = o->retries;
    struct policy *p = &op->base;
    p->bound_ms =
        (uint64_t)(o->connect_timeout_ms + o->timeout_ms) * (uint64_t)(o->retries + 1) + 1000;

    size_t ulen = strlen(o->url);
    while (ulen > 0 && o->url[ulen - 1] == '/')
        ulen--;
    if (strncmp(o->url, "unix://", 7) == 0) {
        if (o->url[7] != '/') {
            policy_free(p);
            return error_set(err, 0, "opa.url: a unix socket needs an absolute path");
        }
        op->unix_socket = xstrndup(o->url + 7, ulen - 7);
        op->endpoint = xasprintf("http://localhost/v1/data/%s", path);
    } else {
        /* The endpoint is the URL with /v1/data/<path> appended to its path, whatever else
         * (credentials, a query) it holds. */
        CURLU *u = curl_url();
        char *scheme = NULL, *host = NULL, *upath = NULL, *endpoint = NULL;
        bool ok = u && curl_url_set(u, CURLUPART_URL, o->url, 0) == CURLUE_OK &&
                  curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
                  curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
                  curl_url_get(u, CURLUPART_PATH, &upath, 0) == CURLUE_OK;
        bool https = ok && strcmp(scheme, "https") == 0;
        bool http_ok = ok && strcmp(scheme, "http") == 0 && is_loopback(host);
        if (ok && (https || http_ok)) {
            size_t plen = strlen(upath);
            while (plen > 0 && upath[plen - 1] == '/')
                plen--;
            cleanup_free char *full = xasprintf("%.*s/v1/data/%s", (int)plen, upath, path);
            if (curl_url_set(u, CURLUPART_PATH, full, 0) == CURLUE_OK &&
                curl_url_get(u, CURLUPART_URL, &endpoint, 0) == CURLUE_OK)
                op->endpoint = xstrdup(endpoint);
        }
        curl_free(scheme);
        curl_free(host);
        curl_free(upath);
        curl_free(endpoint);
        curl_url_cleanup(u);
        if (op->endpoint == NULL) {
            error_set(err, 0, "opa.url `%s`: %s", op->shown_url,
                      !ok ? "not a URL"
                          : "must be https://, or http:// to a loopback address, or unix:///path");
            policy_free(p);
            return -1;
        }
    }

    cleanup_secret struct secret *token = NULL;
    if (o->bearer_token_file != NULL && read_token(o->bearer_token_file, &token, err) < 0) {
        policy_free(p);
        return -1;
    }
    if (setup_curl(op, o, token, err) < 0) {
        policy_free(p);
        return -1;
    }
    *out = p;
    return 0;
}
