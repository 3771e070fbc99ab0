// SHA256_Init/Update/Final are deprecated in OpenSSL 3 in favour of EVP, but
// EVP allocates and frees a context on every digest (and the one-shot SHA256()
// also looks the algorithm up): ~450 ns against ~70 ns for a token, and this
// hash is on every is_revoked call.
#define OPENSSL_SUPPRESS_DEPRECATED
#include "token.hpp"

#include <openssl/rand.h>
#include <openssl/sha.h>

namespace sessrev::token {

Hash sha256(std::string_view data) noexcept {
    Hash out;
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, data.data(), data.size());
    SHA256_Final(out.data(), &ctx);
    return out;
}

bool random_bytes(unsigned char *out, std::size_t n) noexcept {
    return RAND_bytes(out, static_cast<int>(n)) == 1;
}

std::size_t encode_base64url(const unsigned char *in, std::size_t n, char *out) noexcept {
    static constexpr char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::size_t o = 0;
    std::size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (in[i] << 16) | (in[i + 1] << 8) | in[i + 2];
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    if (n - i == 1) {
        unsigned v = in[i] << 16;
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
    } else if (n - i == 2) {
        unsigned v = (in[i] << 16) | (in[i + 1] << 8);
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
    }
    return o;
}

}  // namespace sessrev::token
