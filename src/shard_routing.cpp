#include "shard_routing.hpp"
#include "compat.hpp"

#include "boundary.hpp"

#include "citus_placement.hpp"
#include "in_doubt.hpp"
#include "session_lookup.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_collation_d.h"
#include "catalog/pg_type_d.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

PGDLLEXPORT Datum generate_token(PG_FUNCTION_ARGS);
}

#include <cctype>
#include <cstdio>
#include <cstring>

namespace sessrev::routing {
namespace {

// Whether this transaction changed sessrev's tables.
bool wrote = false;

void at_transaction_end(XactEvent event, void *) {
    if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PREPARE ||
        event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT)
        wrote = false;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

Route at_range(const lookup::ShardMap &map, int range) {
    if (range < 0) return Route{Goes::everywhere, -1, -1};
    if (lookup::held_here(map, range)) return Route{Goes::local, range, map.ranges[range].group};
    return Route{Goes::remote, range, map.ranges[range].group};
}

}  // namespace

Datum user_key(Datum user_id, Oid type) {
    Oid input, ioparam;
    getTypeInputInfo(type, &input, &ioparam);
    return OidInputFunctionCall(input, TextDatumGetCString(user_id), ioparam, -1);
}

namespace {

// The key type of the distributed layout; InvalidOid for user_id's text.
Oid key_type() { return lookup::distributed() ? lookup::layout().user_key_type : InvalidOid; }

}  // namespace

int32 user_hash(Datum user_id) {
    const Oid type = key_type();
    if (!OidIsValid(type)) return DatumGetInt32(DirectFunctionCall1Coll(hashtext, DEFAULT_COLLATION_OID, user_id));
    TypeCacheEntry *entry = lookup_type_cache(type, TYPECACHE_HASH_PROC_FINFO);
    if (!OidIsValid(entry->hash_proc)) elog(ERROR, "sessrev: the user key's type has no hash function");
    return DatumGetInt32(FunctionCall1Coll(&entry->hash_proc_finfo, InvalidOid, user_key(user_id, type)));
}

namespace {

// Whether text cannot be read as a value of type: no bigint as int8in
// reads them (a sign, then decimal digits, or 0x, 0o or 0b and digits of
// that base, underscores between, spaces around), or not 32 hex digits with
// hyphens and braces for a uuid. Lenient: a text it passes may still fail
// the type's input function, which then raises.
bool cannot_be(Oid type, const char *text) {
    const auto space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
    const char *c = text;
    while (space(*c)) c++;
    if (type == UUIDOID) {
        int digits = 0;
        for (; *c != '\0'; c++) {
            if (isxdigit(static_cast<unsigned char>(*c)))
                digits++;
            else if (!(space(*c) || *c == '-' || *c == '{' || *c == '}'))
                return true;
        }
        return digits != 32;
    }
    if (type != INT8OID) return false;
    if (*c == '+' || *c == '-') c++;
    const char *digits = "0123456789_";
    if (c[0] == '0' && c[1] != '\0' && strchr("xXoObB", c[1]) != nullptr) {
        const char base = static_cast<char>(tolower(static_cast<unsigned char>(c[1])));
        digits = base == 'x' ? "0123456789abcdefABCDEF_" : base == 'o' ? "01234567_" : "01_";
        c += 2;
    }
    if (*c == '\0' || strchr(digits, *c) == nullptr) return true;
    while (*c != '\0' && strchr(digits, *c) != nullptr) c++;
    while (space(*c)) c++;
    return *c != '\0';
}

}  // namespace

bool stored_user_id(Datum user_id, Datum *stored) {
    const Oid type = key_type();
    *stored = user_id;
    if (!OidIsValid(type)) return true;
    if (cannot_be(type, TextDatumGetCString(user_id))) return false;
    Oid output;
    bool varlena;
    getTypeOutputInfo(type, &output, &varlena);
    *stored = CStringGetTextDatum(OidOutputFunctionCall(output, user_key(user_id, type)));
    return true;
}

namespace {

// Distributed: a check routes by the shard map as it is now. A shard move
// commits its new placement on every node before the moved shard takes
// writes again: reading the invalidations first (one shared counter when
// there are none), no check reads a shard that has moved away. And a check
// in a statement Citus sent here from another node's transaction is refused,
// as in the coordinator layout: that transaction's changes on this node may
// be in another of its connections.
bool distributed_now() {
    if (!lookup::distributed()) return false;
    AcceptInvalidationMessages();
    if (placement::in_citus_connection())
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("sessrev: a check in a statement that Citus sent here from another node is refused"),
                        errdetail("The statement belongs to a transaction begun on another node, whose own "
                                  "changes to sessrev's shards this connection may not see."),
                        errhint("Check in a statement of its own.")));
    return lookup::distributed();
}

}  // namespace

Route of_token(const char *token, std::size_t length) {
    lookup::at_shard(-1);
    if (!distributed_now()) return Route{Goes::here, -1, -1};
    const lookup::Layout l = lookup::layout();
    if (length <= 9 || token[8] != '.') return Route{Goes::everywhere, -1, -1};
    uint32 hash = 0;
    for (int i = 0; i < 8; i++) {
        const int digit = hex_digit(token[i]);
        if (digit < 0) return Route{Goes::everywhere, -1, -1};
        hash = hash << 4 | static_cast<uint32>(digit);
    }
    return at_range(l.shards, lookup::range_of(l.shards, static_cast<int32>(hash)));
}

Route of_user(Datum user_id) {
    lookup::at_shard(-1);
    if (!distributed_now()) return Route{Goes::here, -1, -1};
    const lookup::Layout l = lookup::layout();
    const int range = lookup::range_of(l.shards, user_hash(user_id));
    if (range < 0) elog(ERROR, "sessrev: the shard map does not cover every hash value");
    return at_range(l.shards, range);
}

int other_groups(int32 *groups, int max) {
    const lookup::Layout l = lookup::layout();
    int n = 0;
    for (int i = 0; i < l.shards.n; i++) {
        const int32 g = l.shards.ranges[i].group;
        if (g == l.placement.group) continue;
        bool seen = false;
        for (int j = 0; j < n && !seen; j++) seen = groups[j] == g;
        if (seen) continue;
        if (n == max) elog(ERROR, "sessrev: more than %d nodes hold sessrev's shards", max);
        groups[n++] = g;
    }
    return n;
}

bool prepared_change(const cache::Key &key) {
    // The doubt is kept with the cache's memory (preloaded, cache_size > 0).
    if (!cache::enabled() || !lookup::distributed()) return false;
    return in_doubt::prepared_in(cache::bucket_of(key)) || in_doubt::prepared_global();
}

bool prepared_global_change() {
    return cache::enabled() && lookup::distributed() && in_doubt::prepared_global();
}

void note_write() {
    static bool registered = false;
    if (!registered) {
        RegisterXactCallback(at_transaction_end, nullptr);
        registered = true;
    }
    wrote = true;
}

Route everywhere() {
    lookup::at_shard(-1);
    if (!distributed_now()) return Route{Goes::here, -1, -1};
    return Route{Goes::everywhere, -1, -1};
}

void refuse_remote_if_unsafe() {
    // A check forwarded here whose shard has moved on is forwarded once more,
    // to where this node's metadata places it; twice, no further.
    if (placement::forwarded_again())
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("sessrev: the shard of this session is no longer on this node"),
                        errdetail("Two nodes forwarded the check, each placing the shard elsewhere "
                                  "(a shard move committing)."),
                        errhint("Check again.")));
    if (wrote)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("sessrev: this transaction changed sessrev's tables, and the session is held "
                               "by another node"),
                        errdetail("The other node would answer without this transaction's changes."),
                        errhint("Check after the transaction commits.")));
}

}  // namespace sessrev::routing

// session_token(user_id text) RETURNS text: a new session's token. In the
// distributed layout it starts with the user id's hash (8 hex digits and a
// dot), so that any node finds the session's shard; elsewhere it is
// generate_token(32). Either way 32 random bytes are the secret.
SESSREV_FUNCTION(session_token) {
    if (PG_ARGISNULL(0)) PG_RETURN_NULL();
    const Datum random = DirectFunctionCall1(generate_token, Int32GetDatum(32));
    if (!sessrev::lookup::distributed()) PG_RETURN_DATUM(random);
    const uint32 hash = static_cast<uint32>(sessrev::routing::user_hash(PG_GETARG_DATUM(0)));
    const text *secret = DatumGetTextPP(random);
    char hint[10];
    snprintf(hint, sizeof hint, "%08x.", hash);
    text *token = static_cast<text *>(palloc(VARHDRSZ + 9 + VARSIZE_ANY_EXHDR(secret)));
    SET_VARSIZE(token, VARHDRSZ + 9 + VARSIZE_ANY_EXHDR(secret));
    memcpy(VARDATA(token), hint, 9);
    memcpy(VARDATA(token) + 9, VARDATA_ANY(secret), VARSIZE_ANY_EXHDR(secret));
    PG_RETURN_TEXT_P(token);
}
