// Token hashing and generation: pure C++ over OpenSSL, no PostgreSQL.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

namespace sessrev::token {

inline constexpr std::size_t hash_size = 32;          // SHA-256
inline constexpr std::size_t min_random_bytes = 16;   // 128 bits of entropy
inline constexpr std::size_t max_random_bytes = 256;
// base64url without padding of max_random_bytes, plus a terminator.
inline constexpr std::size_t max_encoded_size = (max_random_bytes * 4 + 2) / 3 + 1;

using Hash = std::array<unsigned char, hash_size>;

Hash sha256(std::string_view data) noexcept;

// Fills out with n cryptographically strong random bytes; false if OpenSSL's
// generator is not seeded.
bool random_bytes(unsigned char *out, std::size_t n) noexcept;

// Writes base64url (RFC 4648 section 5) of in[0..n) without padding into out,
// which holds at least encoded_length(n) bytes; returns that length.
std::size_t encode_base64url(const unsigned char *in, std::size_t n, char *out) noexcept;

constexpr std::size_t encoded_length(std::size_t n) noexcept { return (n * 4 + 2) / 3; }

}  // namespace sessrev::token
