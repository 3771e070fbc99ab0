// SQL-callable token functions: hash_token, generate_token, device_from_user_agent.
#include "boundary.hpp"
#include "compat.hpp"
#include "token.hpp"
#include "user_agent.hpp"

extern "C" {
#include "utils/builtins.h"
}

#include <string>

namespace {

std::string_view text_view(const text *t) {
    return {VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)};
}

}  // namespace

// hash_token(token text) RETURNS bytea
SESSREV_FUNCTION(hash_token) {
    const auto hash = sessrev::token::sha256(text_view(PG_GETARG_TEXT_PP(0)));
    bytea *result = static_cast<bytea *>(palloc(VARHDRSZ + hash.size()));
    SET_VARSIZE(result, VARHDRSZ + hash.size());
    memcpy(VARDATA(result), hash.data(), hash.size());
    PG_RETURN_BYTEA_P(result);
}

// generate_token(nbytes int) RETURNS text
SESSREV_FUNCTION(generate_token) {
    namespace token = sessrev::token;
    const int32 nbytes = PG_GETARG_INT32(0);
    if (nbytes < static_cast<int32>(token::min_random_bytes) ||
        nbytes > static_cast<int32>(token::max_random_bytes))
        throw sessrev::SqlError(ERRCODE_INVALID_PARAMETER_VALUE,
                                "nbytes must be between 16 and 256, got " + std::to_string(nbytes));
    unsigned char raw[token::max_random_bytes];
    char encoded[token::max_encoded_size];
    if (!token::random_bytes(raw, nbytes))
        throw sessrev::SqlError(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION,
                                "OpenSSL could not generate random bytes");
    const std::size_t length = token::encode_base64url(raw, nbytes, encoded);
    PG_RETURN_TEXT_P(cstring_to_text_with_len(encoded, static_cast<int>(length)));
}

// device_from_user_agent(user_agent text) RETURNS text
SESSREV_FUNCTION(device_from_user_agent) {
    // Detoasting may raise an error: do it before any std::string exists.
    const text *user_agent = PG_ARGISNULL(0) ? nullptr : PG_GETARG_TEXT_PP(0);
    const std::string name = user_agent == nullptr
                                 ? std::string(sessrev::user_agent::unknown_device)
                                 : sessrev::user_agent::device_name(text_view(user_agent));
    text *result = sessrev::pg_call(
        [&] { return cstring_to_text_with_len(name.data(), static_cast<int>(name.size())); });
    PG_RETURN_TEXT_P(result);
}
