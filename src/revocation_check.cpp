// SQL-callable is_revoked(token text) and is_revoked(session_id uuid): from the
// shared-memory cache when it is enabled, from the sessions table otherwise.
#include "boundary.hpp"
#include "compat.hpp"
#include "cache.hpp"
#include "cache_invalidation.hpp"
#include "check_forwarding.hpp"
#include "session_lookup.hpp"
#include "shard_routing.hpp"
#include "token.hpp"
#include "trigger_arming.hpp"

extern "C" {
#include "access/xlog.h"
#include "miscadmin.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
}

namespace {

using sessrev::cache::Key;
using sessrev::cache::Kind;

// True when the session found through index by value is live. place is where
// the cache keeps key (meaningless when the cache is not usable).
bool is_live(sessrev::lookup::Key index, Datum value, const Key &key, bool usable, uint64 place) {
    namespace cache = sessrev::cache;
    cache::Times times;
    if (!usable) return sessrev::lookup::find_live_session(index, value, &times);
    // A hit whose times have run out is not trusted: the table decides.
    if (cache::lookup(key, place, &times) && sessrev::lookup::times_are_live(times)) return true;
    cache::count_miss(place);
    cache::FillTicket ticket = cache::ticket(key);
    bool live = sessrev::lookup::find_live_session(index, value, &times);
    if (live && cache::may_fill()) cache::fill(key, place, times, ticket);
    return live;
}

}  // namespace

namespace {

// The token's session read here: from the cache, or the table (in the
// distributed layout, the shard at_shard chose).
bool revoked_here(const text *token, std::size_t length) {
    // The token's set is fetched from memory while its SHA-256 is computed.
    Key key{MyDatabaseId, sessrev::lookup::layout().sessions, Kind::token_hash, {}};
    const bool usable = sessrev::invalidation::cache_usable();
    uint64 place = 0;
    if (usable) {
        place = sessrev::cache::place_of(key, VARDATA_ANY(token), length);
        sessrev::cache::prefetch(place);
    }
    const auto hash = sessrev::token::sha256({VARDATA_ANY(token), length});
    // A bytea on the stack: the scan key only needs it for this call.
    struct alignas(int32) {
        char header[VARHDRSZ];
        unsigned char data[sessrev::token::hash_size];
    } hash_bytea;
    SET_VARSIZE(&hash_bytea, sizeof hash_bytea);
    memcpy(hash_bytea.data, hash.data(), hash.size());

    memcpy(key.bytes, hash.data(), hash.size());
    if (sessrev::routing::prepared_change(key)) return true;
    return !is_live(sessrev::lookup::Key::token_hash, PointerGetDatum(&hash_bytea), key, usable, place);
}

bool session_revoked_here(const pg_uuid_t *id) {
    Key key{MyDatabaseId, sessrev::lookup::layout().sessions, Kind::session_id, {}};
    memcpy(key.bytes, id->data, UUID_LEN);
    const bool usable = sessrev::invalidation::cache_usable();
    const uint64 place = usable ? sessrev::cache::place_of(key, id->data, UUID_LEN) : 0;
    if (sessrev::routing::prepared_change(key)) return true;
    return !is_live(sessrev::lookup::Key::session_id, UUIDPGetDatum(id), key, usable, place);
}

}  // namespace

// is_revoked(token text) RETURNS boolean: false only for a live session.
SESSREV_FUNCTION(is_revoked_token) {
    if (PG_ARGISNULL(0)) PG_RETURN_BOOL(true);
    const text *token = PG_GETARG_TEXT_PP(0);
    const std::size_t length = VARSIZE_ANY_EXHDR(token);
    if (length == 0) PG_RETURN_BOOL(true);
    if (sessrev::check_forwarding::applies()) PG_RETURN_BOOL(sessrev::check_forwarding::is_revoked(0, token));
    using sessrev::routing::Goes;
    const sessrev::routing::Route route = sessrev::routing::of_token(VARDATA_ANY(token), length);
    switch (route.goes) {
        case Goes::here: break;
        case Goes::local: sessrev::lookup::at_shard(route.range); break;
        case Goes::remote:
            sessrev::routing::refuse_remote_if_unsafe();
            PG_RETURN_BOOL(sessrev::check_forwarding::is_revoked(route.group, token));
        case Goes::everywhere:
            PG_RETURN_BOOL(!sessrev::routing::live_anywhere(
                [&] { return !revoked_here(token, length); },
                [&](int32 group) { return !sessrev::check_forwarding::is_revoked(group, token); }));
    }
    PG_RETURN_BOOL(revoked_here(token, length));
}

// is_revoked(session_id uuid) RETURNS boolean
SESSREV_FUNCTION(is_revoked_session) {
    if (PG_ARGISNULL(0)) PG_RETURN_BOOL(true);
    const pg_uuid_t *id = PG_GETARG_UUID_P(0);
    if (sessrev::check_forwarding::applies()) PG_RETURN_BOOL(sessrev::check_forwarding::is_revoked(0, id));
    // A session id carries no shard: in the distributed layout every node
    // holding shards is asked.
    if (sessrev::routing::everywhere().goes == sessrev::routing::Goes::everywhere)
        PG_RETURN_BOOL(!sessrev::routing::live_anywhere(
            [&] { return !session_revoked_here(id); },
            [&](int32 group) { return !sessrev::check_forwarding::is_revoked(group, id); }));
    PG_RETURN_BOOL(session_revoked_here(id));
}

// session_is_live(revoked boolean, expires_at timestamptz, last_active_at
// timestamptz) RETURNS boolean: the one rule for "live", which every SQL
// function and view of sessrev applies to a session row, and is_revoked to
// the cached times.
SESSREV_FUNCTION(session_is_live) {
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_GETARG_BOOL(0))
        PG_RETURN_BOOL(false);
    const sessrev::cache::Times times{PG_GETARG_TIMESTAMPTZ(1), PG_GETARG_TIMESTAMPTZ(2)};
    PG_RETURN_BOOL(sessrev::lookup::times_are_live(times));
}
