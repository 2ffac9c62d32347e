/* libcrypto, loaded at its first use (core/dlopen.h).  Every start of tether used to map it,
 * and its relocations and its configuration cost a hook or a `tether run` more than the
 * rest of tether's start together; most starts need none of it (SHA-256 is libnettle's
 * where OpenSSL's configuration allows, core/util.c).  So tether is not linked against it:
 * core/crypto.c defines each function below under its own name, typed by OpenSSL's own
 * header (a definition that disagreed with it would not compile), and the first call of
 * any of them loads libcrypto, initialises it with its configuration (OPENSSL_CONF,
 * providers, FIPS) and forwards.  A libcrypto that cannot be loaded stops tether there with
 * one line (exit 125), before anything that needed it happened.
 *
 * The list: F(return type, name, parameters, arguments); V(name, ...) for a void function;
 * N(name, ...) for a function that frees its first argument, which loads nothing to free
 * NULL (every clean-up frees what it may not have made).
 * Produced from `gcc -aux-info` of the headers below, for the names `nm -D --undefined-only`
 * listed when tether still linked libcrypto.  A new OpenSSL function is a new line here. */
#pragma once

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

/* clang-format off */
#define CRYPTO_FUNCTIONS(F, V, N) \
    F(int, BIO_free, (BIO *a0), (a0)) \
    F(BIO *, BIO_new_mem_buf, (const void *a0, int a1), (a0, a1)) \
    F(int, BN_bn2binpad, (const BIGNUM *a0, unsigned char *a1, int a2), (a0, a1, a2)) \
    N(CRYPTO_free, (void *a0, const char *a1, int a2), (a0, a1, a2)) \
    N(ECDSA_SIG_free, (ECDSA_SIG *a0), (a0)) \
    F(const BIGNUM *, ECDSA_SIG_get0_r, (const ECDSA_SIG *a0), (a0)) \
    F(const BIGNUM *, ECDSA_SIG_get0_s, (const ECDSA_SIG *a0), (a0)) \
    V(ERR_clear_error, (void), ()) \
    F(int, EVP_CIPHER_CTX_ctrl, (EVP_CIPHER_CTX *a0, int a1, int a2, void *a3), (a0, a1, a2, a3)) \
    N(EVP_CIPHER_CTX_free, (EVP_CIPHER_CTX *a0), (a0)) \
    F(EVP_CIPHER_CTX *, EVP_CIPHER_CTX_new, (void), ()) \
    F(EVP_CIPHER *, EVP_CIPHER_fetch, (OSSL_LIB_CTX *a0, const char *a1, const char *a2), (a0, a1, a2)) \
    N(EVP_CIPHER_free, (EVP_CIPHER *a0), (a0)) \
    F(int, EVP_CipherFinal_ex, (EVP_CIPHER_CTX *a0, unsigned char *a1, int *a2), (a0, a1, a2)) \
    F(int, EVP_CipherInit_ex, (EVP_CIPHER_CTX *a0, const EVP_CIPHER *a1, ENGINE *a2, const unsigned char *a3, const unsigned char *a4, int a5), (a0, a1, a2, a3, a4, a5)) \
    F(int, EVP_CipherUpdate, (EVP_CIPHER_CTX *a0, unsigned char *a1, int *a2, const unsigned char *a3, int a4), (a0, a1, a2, a3, a4)) \
    F(int, EVP_DecodeBlock, (unsigned char *a0, const unsigned char *a1, int a2), (a0, a1, a2)) \
    F(int, EVP_DecryptFinal_ex, (EVP_CIPHER_CTX *a0, unsigned char *a1, int *a2), (a0, a1, a2)) \
    F(int, EVP_DecryptInit_ex2, (EVP_CIPHER_CTX *a0, const EVP_CIPHER *a1, const unsigned char *a2, const unsigned char *a3, const OSSL_PARAM *a4), (a0, a1, a2, a3, a4)) \
    F(int, EVP_DecryptUpdate, (EVP_CIPHER_CTX *a0, unsigned char *a1, int *a2, const unsigned char *a3, int a4), (a0, a1, a2, a3, a4)) \
    F(int, EVP_Digest, (const void *a0, size_t a1, unsigned char *a2, unsigned int *a3, const EVP_MD *a4, ENGINE *a5), (a0, a1, a2, a3, a4, a5)) \
    F(int, EVP_DigestFinal_ex, (EVP_MD_CTX *a0, unsigned char *a1, unsigned int *a2), (a0, a1, a2)) \
    F(int, EVP_DigestInit_ex, (EVP_MD_CTX *a0, const EVP_MD *a1, ENGINE *a2), (a0, a1, a2)) \
    F(int, EVP_DigestSign, (EVP_MD_CTX *a0, unsigned char *a1, size_t *a2, const unsigned char *a3, size_t a4), (a0, a1, a2, a3, a4)) \
    F(int, EVP_DigestSignInit, (EVP_MD_CTX *a0, EVP_PKEY_CTX **a1, const EVP_MD *a2, ENGINE *a3, EVP_PKEY *a4), (a0, a1, a2, a3, a4)) \
    F(int, EVP_DigestUpdate, (EVP_MD_CTX *a0, const void *a1, size_t a2), (a0, a1, a2)) \
    F(int, EVP_DigestVerify, (EVP_MD_CTX *a0, const unsigned char *a1, size_t a2, const unsigned char *a3, size_t a4), (a0, a1, a2, a3, a4)) \
    F(int, EVP_DigestVerifyInit, (EVP_MD_CTX *a0, EVP_PKEY_CTX **a1, const EVP_MD *a2, ENGINE *a3, EVP_PKEY *a4), (a0, a1, a2, a3, a4)) \
    F(int, EVP_EncodeBlock, (unsigned char *a0, const unsigned char *a1, int a2), (a0, a1, a2)) \
    N(EVP_MAC_CTX_free, (EVP_MAC_CTX *a0), (a0)) \
    F(EVP_MAC_CTX *, EVP_MAC_CTX_new, (EVP_MAC *a0), (a0)) \
    F(EVP_MAC *, EVP_MAC_fetch, (OSSL_LIB_CTX *a0, const char *a1, const char *a2), (a0, a1, a2)) \
    F(int, EVP_MAC_final, (EVP_MAC_CTX *a0, unsigned char *a1, size_t *a2, size_t a3), (a0, a1, a2, a3)) \
    N(EVP_MAC_free, (EVP_MAC *a0), (a0)) \
    F(int, EVP_MAC_init, (EVP_MAC_CTX *a0, const unsigned char *a1, size_t a2, const OSSL_PARAM *a3), (a0, a1, a2, a3)) \
    F(int, EVP_MAC_update, (EVP_MAC_CTX *a0, const unsigned char *a1, size_t a2), (a0, a1, a2)) \
    F(int, EVP_MD_CTX_copy_ex, (EVP_MD_CTX *a0, const EVP_MD_CTX *a1), (a0, a1)) \
    N(EVP_MD_CTX_free, (EVP_MD_CTX *a0), (a0)) \
    F(EVP_MD_CTX *, EVP_MD_CTX_new, (void), ()) \
    N(EVP_PKEY_CTX_free, (EVP_PKEY_CTX *a0), (a0)) \
    F(EVP_PKEY_CTX *, EVP_PKEY_CTX_new_from_name, (OSSL_LIB_CTX *a0, const char *a1, const char *a2), (a0, a1, a2)) \
    F(EVP_PKEY_CTX *, EVP_PKEY_CTX_new_from_pkey, (OSSL_LIB_CTX *a0, EVP_PKEY *a1, const char *a2), (a0, a1, a2)) \
    F(int, EVP_PKEY_CTX_set_rsa_mgf1_md_name, (EVP_PKEY_CTX *a0, const char *a1, const char *a2), (a0, a1, a2)) \
    F(int, EVP_PKEY_CTX_set_rsa_oaep_md_name, (EVP_PKEY_CTX *a0, const char *a1, const char *a2), (a0, a1, a2)) \
    F(int, EVP_PKEY_CTX_set_rsa_padding, (EVP_PKEY_CTX *a0, int a1), (a0, a1)) \
    F(int, EVP_PKEY_decrypt, (EVP_PKEY_CTX *a0, unsigned char *a1, size_t *a2, const unsigned char *a3, size_t a4), (a0, a1, a2, a3, a4)) \
    F(int, EVP_PKEY_decrypt_init, (EVP_PKEY_CTX *a0), (a0)) \
    F(int, EVP_PKEY_derive, (EVP_PKEY_CTX *a0, unsigned char *a1, size_t *a2), (a0, a1, a2)) \
    F(int, EVP_PKEY_derive_init, (EVP_PKEY_CTX *a0), (a0)) \
    F(int, EVP_PKEY_derive_set_peer_ex, (EVP_PKEY_CTX *a0, EVP_PKEY *a1, int a2), (a0, a1, a2)) \
    N(EVP_PKEY_free, (EVP_PKEY *a0), (a0)) \
    F(int, EVP_PKEY_fromdata, (EVP_PKEY_CTX *a0, EVP_PKEY **a1, int a2, OSSL_PARAM *a3), (a0, a1, a2, a3)) \
    F(int, EVP_PKEY_fromdata_init, (EVP_PKEY_CTX *a0), (a0)) \
    F(int, EVP_PKEY_get_base_id, (const EVP_PKEY *a0), (a0)) \
    F(int, EVP_PKEY_get_group_name, (const EVP_PKEY *a0, char *a1, size_t a2, size_t *a3), (a0, a1, a2, a3)) \
    F(int, EVP_PKEY_get_id, (const EVP_PKEY *a0), (a0)) \
    F(int, EVP_PKEY_get_octet_string_param, (const EVP_PKEY *a0, const char *a1, unsigned char *a2, size_t a3, size_t *a4), (a0, a1, a2, a3, a4)) \
    F(int, EVP_PKEY_get_raw_public_key, (const EVP_PKEY *a0, unsigned char *a1, size_t *a2), (a0, a1, a2)) \
    F(int, EVP_PKEY_get_size, (const EVP_PKEY *a0), (a0)) \
    F(int, EVP_PKEY_get_utf8_string_param, (const EVP_PKEY *a0, const char *a1, char *a2, size_t a3, size_t *a4), (a0, a1, a2, a3, a4)) \
    F(int, EVP_PKEY_is_a, (const EVP_PKEY *a0, const char *a1), (a0, a1)) \
    F(EVP_PKEY *, EVP_PKEY_new_raw_public_key, (int a0, ENGINE *a1, const unsigned char *a2, size_t a3), (a0, a1, a2, a3)) \
    F(const EVP_CIPHER *, EVP_aes_256_ctr, (void), ()) \
    F(const EVP_CIPHER *, EVP_aes_256_gcm, (void), ()) \
    F(const EVP_MD *, EVP_sha256, (void), ()) \
    F(int, OBJ_sn2nid, (const char *a0), (a0)) \
    F(int, OPENSSL_init_crypto, (uint64_t a0, const OPENSSL_INIT_SETTINGS *a1), (a0, a1)) \
    N(OSSL_PARAM_BLD_free, (OSSL_PARAM_BLD *a0), (a0)) \
    F(OSSL_PARAM_BLD *, OSSL_PARAM_BLD_new, (void), ()) \
    F(int, OSSL_PARAM_BLD_push_octet_string, (OSSL_PARAM_BLD *a0, const char *a1, const void *a2, size_t a3), (a0, a1, a2, a3)) \
    F(int, OSSL_PARAM_BLD_push_utf8_string, (OSSL_PARAM_BLD *a0, const char *a1, const char *a2, size_t a3), (a0, a1, a2, a3)) \
    F(OSSL_PARAM *, OSSL_PARAM_BLD_to_param, (OSSL_PARAM_BLD *a0), (a0)) \
    F(OSSL_PARAM, OSSL_PARAM_construct_end, (void), ()) \
    F(OSSL_PARAM, OSSL_PARAM_construct_utf8_string, (const char *a0, char *a1, size_t a2), (a0, a1, a2)) \
    N(OSSL_PARAM_free, (OSSL_PARAM *a0), (a0)) \
    F(EVP_PKEY *, PEM_read_PUBKEY, (FILE *a0, EVP_PKEY **a1, pem_password_cb *a2, void *a3), (a0, a1, a2, a3)) \
    F(EVP_PKEY *, PEM_read_PrivateKey, (FILE *a0, EVP_PKEY **a1, pem_password_cb *a2, void *a3), (a0, a1, a2, a3)) \
    F(EVP_PKEY *, PEM_read_bio_PrivateKey, (BIO *a0, EVP_PKEY **a1, pem_password_cb *a2, void *a3), (a0, a1, a2, a3)) \
    F(int, RAND_bytes, (unsigned char *a0, int a1), (a0, a1)) \
    F(EVP_PKEY *, d2i_AutoPrivateKey, (EVP_PKEY **a0, const unsigned char **a1, long int a2), (a0, a1, a2)) \
    F(ECDSA_SIG *, d2i_ECDSA_SIG, (ECDSA_SIG **a0, const unsigned char **a1, long int a2), (a0, a1, a2)) \
    F(int, i2d_PUBKEY, (const EVP_PKEY *a0, unsigned char **a1), (a0, a1)) \
    F(int, CRYPTO_memcmp, (const void *a0, const void *a1, size_t a2), (a0, a1, a2))
/* clang-format on */

#include "error.h"

/* Loads libcrypto now (it is otherwise loaded by the first call of any function above): 0,
 * or -1 with the one-line error that names the library and its package. */
int crypto_load(tether_error_t *err);
