// SQL-callable is_revoked(token text) and is_revoked(session_id uuid).
#include "boundary.hpp"
#include "session_lookup.hpp"
#include "token.hpp"

extern "C" {
#include "utils/uuid.h"
}

// is_revoked(token text) RETURNS boolean: false only for a live session.
SESSREV_FUNCTION(is_revoked_token) {
    if (PG_ARGISNULL(0)) PG_RETURN_BOOL(true);
    const text *token = PG_GETARG_TEXT_PP(0);
    const std::size_t length = VARSIZE_ANY_EXHDR(token);
    if (length == 0) PG_RETURN_BOOL(true);

    const auto hash = sessrev::token::sha256({VARDATA_ANY(token), length});
    // A bytea on the stack: the scan key only needs it for this call.
    struct alignas(int32) {
        char header[VARHDRSZ];
        unsigned char data[sessrev::token::hash_size];
    } hash_bytea;
    SET_VARSIZE(&hash_bytea, sizeof hash_bytea);
    memcpy(hash_bytea.data, hash.data(), hash.size());

    using sessrev::lookup::Key;
    PG_RETURN_BOOL(!sessrev::lookup::session_is_live(Key::token_hash, PointerGetDatum(&hash_bytea)));
}

// is_revoked(session_id uuid) RETURNS boolean
SESSREV_FUNCTION(is_revoked_session) {
    if (PG_ARGISNULL(0)) PG_RETURN_BOOL(true);
    using sessrev::lookup::Key;
    PG_RETURN_BOOL(!sessrev::lookup::session_is_live(Key::session_id, PG_GETARG_DATUM(0)));
}
