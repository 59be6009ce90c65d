/* Section encryption: AES-256-GCM through OpenSSL's EVP interface.
 *
 * The stream key is never the caller's key itself: it is derived with the
 * stream's random salt (HKDF-SHA256 from a key, PBKDF2-HMAC-SHA256 from a
 * passphrase), so reusing a key across snapshots never reuses a (key,
 * nonce) pair. The nonce is the section's stream offset, unique within a
 * stream, followed by a zero counter word. */
#include "stream.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "../os/lazy.h"

/* libcrypto is loaded on the first encrypted stream (src/os/lazy.h). */
#define CRYPTO_SYMS(X)                                                         \
    X(RAND_bytes)                                                              \
    X(EVP_PKEY_CTX_new_id)                                                     \
    X(EVP_PKEY_derive_init)                                                    \
    X(EVP_PKEY_CTX_set_hkdf_md)                                                \
    X(EVP_sha256)                                                              \
    X(EVP_PKEY_CTX_set1_hkdf_salt)                                             \
    X(EVP_PKEY_CTX_set1_hkdf_key)                                              \
    X(EVP_PKEY_CTX_add1_hkdf_info)                                             \
    X(EVP_PKEY_derive)                                                         \
    X(EVP_PKEY_CTX_free)                                                       \
    X(EVP_CIPHER_CTX_new)                                                      \
    X(PKCS5_PBKDF2_HMAC)                                                       \
    X(EVP_CIPHER_CTX_free)                                                     \
    X(OPENSSL_cleanse)                                                         \
    X(EVP_EncryptInit_ex)                                                      \
    X(EVP_aes_256_gcm)                                                         \
    X(EVP_EncryptUpdate)                                                       \
    X(EVP_EncryptFinal_ex)                                                     \
    X(EVP_CIPHER_CTX_ctrl)                                                     \
    X(EVP_DecryptInit_ex)                                                      \
    X(EVP_DecryptUpdate)                                                       \
    X(EVP_DecryptFinal_ex)
HVI_LAZY_TABLE(crypto, HVCORE_SONAME_CRYPTO, CRYPTO_SYMS)
#define RAND_bytes HVI_LAZY_USE(crypto, RAND_bytes)
#define EVP_PKEY_CTX_new_id HVI_LAZY_USE(crypto, EVP_PKEY_CTX_new_id)
#define EVP_PKEY_derive_init HVI_LAZY_USE(crypto, EVP_PKEY_derive_init)
#define EVP_PKEY_CTX_set_hkdf_md HVI_LAZY_USE(crypto, EVP_PKEY_CTX_set_hkdf_md)
#define EVP_sha256 HVI_LAZY_USE(crypto, EVP_sha256)
#define EVP_PKEY_CTX_set1_hkdf_salt                                            \
    HVI_LAZY_USE(crypto, EVP_PKEY_CTX_set1_hkdf_salt)
#define EVP_PKEY_CTX_set1_hkdf_key                                             \
    HVI_LAZY_USE(crypto, EVP_PKEY_CTX_set1_hkdf_key)
#define EVP_PKEY_CTX_add1_hkdf_info                                            \
    HVI_LAZY_USE(crypto, EVP_PKEY_CTX_add1_hkdf_info)
#define EVP_PKEY_derive HVI_LAZY_USE(crypto, EVP_PKEY_derive)
#define EVP_PKEY_CTX_free HVI_LAZY_USE(crypto, EVP_PKEY_CTX_free)
#define EVP_CIPHER_CTX_new HVI_LAZY_USE(crypto, EVP_CIPHER_CTX_new)
#define PKCS5_PBKDF2_HMAC HVI_LAZY_USE(crypto, PKCS5_PBKDF2_HMAC)
#define EVP_CIPHER_CTX_free HVI_LAZY_USE(crypto, EVP_CIPHER_CTX_free)
#define OPENSSL_cleanse HVI_LAZY_USE(crypto, OPENSSL_cleanse)
#define EVP_EncryptInit_ex HVI_LAZY_USE(crypto, EVP_EncryptInit_ex)
#define EVP_aes_256_gcm HVI_LAZY_USE(crypto, EVP_aes_256_gcm)
#define EVP_EncryptUpdate HVI_LAZY_USE(crypto, EVP_EncryptUpdate)
#define EVP_EncryptFinal_ex HVI_LAZY_USE(crypto, EVP_EncryptFinal_ex)
#define EVP_CIPHER_CTX_ctrl HVI_LAZY_USE(crypto, EVP_CIPHER_CTX_ctrl)
#define EVP_DecryptInit_ex HVI_LAZY_USE(crypto, EVP_DecryptInit_ex)
#define EVP_DecryptUpdate HVI_LAZY_USE(crypto, EVP_DecryptUpdate)
#define EVP_DecryptFinal_ex HVI_LAZY_USE(crypto, EVP_DecryptFinal_ex)

#define PBKDF2_ITERATIONS 600000
#define HKDF_INFO "libhvcore stream v1"

struct hvi_crypt {
    uint8_t key[32];
    EVP_CIPHER_CTX *ctx;
};

int hvi_random(void *buf, size_t len)
{
    int r = hvi_lazy_crypto();
    if (r < 0)
        return r;
    if (RAND_bytes(buf, (int)len) != 1)
        return hvi_error(-EIO, "OpenSSL could not produce random bytes");
    return 0;
}

static int hkdf(const uint8_t *ikm, const uint8_t salt[16], uint8_t out[32])
{
    EVP_PKEY_CTX *p = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    size_t n = 32;
    int ok = p && EVP_PKEY_derive_init(p) > 0 &&
             EVP_PKEY_CTX_set_hkdf_md(p, EVP_sha256()) > 0 &&
             EVP_PKEY_CTX_set1_hkdf_salt(p, salt, 16) > 0 &&
             EVP_PKEY_CTX_set1_hkdf_key(p, ikm, HVC_STREAM_KEY_SIZE) > 0 &&
             EVP_PKEY_CTX_add1_hkdf_info(p, (const unsigned char *)HKDF_INFO,
                                         (int)strlen(HKDF_INFO)) > 0 &&
             EVP_PKEY_derive(p, out, &n) > 0 && n == 32;
    EVP_PKEY_CTX_free(p);
    return ok ? 0 : hvi_error(-EIO, "OpenSSL HKDF-SHA256 failed");
}

int hvi_crypt_new(const uint8_t *key, const char *passphrase,
                  const uint8_t salt[16], struct hvi_crypt **out)
{
    int r = hvi_lazy_crypto();
    if (r < 0)
        return r;
    struct hvi_crypt *c = calloc(1, sizeof(*c));
    if (!c || !(c->ctx = EVP_CIPHER_CTX_new())) {
        free(c);
        return hvi_error(-ENOMEM, "out of memory for the stream cipher");
    }
    if (key)
        r = hkdf(key, salt, c->key);
    else if (PKCS5_PBKDF2_HMAC(passphrase, (int)strlen(passphrase), salt, 16,
                               PBKDF2_ITERATIONS, EVP_sha256(), 32,
                               c->key) != 1)
        r = hvi_error(-EIO, "OpenSSL PBKDF2-HMAC-SHA256 failed");
    if (r < 0) {
        hvi_crypt_free(c);
        return r;
    }
    *out = c;
    return 0;
}

int hvi_crypt_clone(const struct hvi_crypt *c, struct hvi_crypt **out)
{
    struct hvi_crypt *n = calloc(1, sizeof(*n));
    if (!n || !(n->ctx = EVP_CIPHER_CTX_new())) {
        free(n);
        return hvi_error(-ENOMEM, "out of memory for the stream cipher");
    }
    memcpy(n->key, c->key, sizeof(n->key));
    *out = n;
    return 0;
}

void hvi_crypt_free(struct hvi_crypt *c)
{
    if (!c)
        return;
    EVP_CIPHER_CTX_free(c->ctx);
    OPENSSL_cleanse(c->key, sizeof(c->key));
    free(c);
}

static void nonce(uint64_t offset, uint8_t iv[12])
{
    hvi_put64(iv, offset);
    hvi_put32(iv + 8, 0);
}

/* OpenSSL takes int lengths; sealed payloads are bounded far below. */
int hvi_seal(struct hvi_crypt *c, uint64_t offset, const uint8_t aad[20],
             const void *in, size_t len, uint8_t *out)
{
    uint8_t iv[12];
    nonce(offset, iv);
    int n = 0, fin = 0;
    if (len > HVI_MAX_SECTION ||
        EVP_EncryptInit_ex(c->ctx, EVP_aes_256_gcm(), NULL, c->key, iv) != 1 ||
        EVP_EncryptUpdate(c->ctx, NULL, &n, aad, 20) != 1 ||
        EVP_EncryptUpdate(c->ctx, out, &n, in, (int)len) != 1 ||
        EVP_EncryptFinal_ex(c->ctx, out + n, &fin) != 1 ||
        EVP_CIPHER_CTX_ctrl(c->ctx, EVP_CTRL_GCM_GET_TAG, HVI_TAG_SIZE,
                            out + len) != 1)
        return hvi_error(-EIO, "OpenSSL AES-256-GCM encryption failed");
    return 0;
}

int hvi_unseal(struct hvi_crypt *c, uint64_t offset, const uint8_t aad[20],
               uint8_t *buf, size_t len)
{
    uint8_t iv[12];
    nonce(offset, iv);
    if (len < HVI_TAG_SIZE || len - HVI_TAG_SIZE > HVI_MAX_SECTION)
        return -EBADMSG;
    size_t plen = len - HVI_TAG_SIZE;
    int n = 0, fin = 0;
    if (EVP_DecryptInit_ex(c->ctx, EVP_aes_256_gcm(), NULL, c->key, iv) != 1 ||
        EVP_DecryptUpdate(c->ctx, NULL, &n, aad, 20) != 1 ||
        EVP_DecryptUpdate(c->ctx, buf, &n, buf, (int)plen) != 1 ||
        EVP_CIPHER_CTX_ctrl(c->ctx, EVP_CTRL_GCM_SET_TAG, HVI_TAG_SIZE,
                            buf + plen) != 1)
        return -EIO;
    if (EVP_DecryptFinal_ex(c->ctx, buf + n, &fin) != 1)
        return -EKEYREJECTED;
    return 0;
}
