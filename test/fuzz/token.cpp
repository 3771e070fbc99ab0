// libFuzzer target: sessrev::token::encode_base64url and sha256 on any bytes,
// checked against OpenSSL (EVP_EncodeBlock's standard base64 with RFC 4648's
// URL alphabet and no padding; EVP_Digest's SHA-256) and against a decoder
// written here, which must give the input back.
#include "token.hpp"

#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

int value_of(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

// base64url without padding back to bytes; false on anything not canonical.
bool decode(const char *in, std::size_t n, std::vector<unsigned char> &out) {
    if (n % 4 == 1) return false;
    unsigned bits = 0;
    int nbits = 0;
    for (std::size_t i = 0; i < n; i++) {
        const int v = value_of(in[i]);
        if (v < 0) return false;
        bits = (bits << 6) | static_cast<unsigned>(v);
        nbits += 6;
        if (nbits >= 8) {
            nbits -= 8;
            out.push_back(static_cast<unsigned char>(bits >> nbits));
            bits &= (1u << nbits) - 1;
        }
    }
    return bits == 0;  // the unused low bits of the last character are zero
}

std::string openssl_base64url(const unsigned char *in, std::size_t n) {
    std::string s(4 * ((n + 2) / 3) + 1, '\0');
    const int length = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(s.data()), in, static_cast<int>(n));
    s.resize(static_cast<std::size_t>(length));
    while (!s.empty() && s.back() == '=') s.pop_back();
    for (char &c : s) {
        if (c == '+') c = '-';
        if (c == '/') c = '_';
    }
    return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    namespace token = sessrev::token;
    const std::vector<unsigned char> in(data, data + size);  // exactly size bytes on the heap

    // The output buffer is exactly encoded_length(n): ASan sees any write past it.
    const std::size_t expected = token::encoded_length(size);
    std::vector<char> out(expected);
    const std::size_t length = token::encode_base64url(in.data(), size, out.data());
    require(length == expected);
    require(std::string(out.data(), length) == openssl_base64url(in.data(), size));
    std::vector<unsigned char> back;
    require(decode(out.data(), length, back));
    require(back == in);

    // generate_token encodes up to max_random_bytes into max_encoded_size bytes.
    if (size <= token::max_random_bytes) require(expected < token::max_encoded_size);

    const token::Hash hash = token::sha256({reinterpret_cast<const char *>(in.data()), size});
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_length = 0;
    require(EVP_Digest(in.data(), size, digest, &digest_length, EVP_sha256(), nullptr) == 1);
    require(digest_length == hash.size() && std::memcmp(digest, hash.data(), hash.size()) == 0);
    return 0;
}
