// SQL-callable validate_session_record(token text), the body of the SQL
// function validate_session (1.4), the set-returning validate_session(token
// text) of SQL 1.2 and 1.3, and warm_session_cache(token text). Validation:
// who a live session's token belongs to. Preloaded, a hit in the session
// cache (session_cache.hpp) answers without reading the table; otherwise one
// indexed read of the latest committed row. A due touch is queued for the worker (touch_queue.hpp) or,
// where no worker serves this database, made in the caller's transaction
// without ever waiting (sessrev.touch_session).
#include "validate_session.hpp"

#include "boundary.hpp"
#include "cache.hpp"
#include "cache_invalidation.hpp"
#include "check_forwarding.hpp"
#include "shard_routing.hpp"
#include "compat.hpp"
#include "current_session.hpp"
#include "pending_revocations.hpp"
#include "reuse_reports.hpp"
#include "session_cache.hpp"
#include "session_lookup.hpp"
#include "settings.hpp"
#include "token.hpp"
#include "touch_queue.hpp"
#include "trigger_arming.hpp"

extern "C" {
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/jsonb.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
}

#include <cstring>

namespace {

namespace cache = sessrev::cache;
namespace session_cache = sessrev::session_cache;
namespace lookup = sessrev::lookup;
namespace pending = sessrev::pending;
using session_cache::Profile;

// A SHA-256 as a bytea on the stack, for scan keys and fmgr calls.
struct alignas(int32) HashBytea {
    char header[VARHDRSZ];
    unsigned char data[sessrev::token::hash_size];
};

// Calls the internal SECURITY DEFINER function sessrev.name(args) through fmgr
// (which applies its rights and pinned search_path); *isnull receives whether
// it returned NULL.
Datum call_internal(const char *name, int nargs, const Oid *types, const NullableDatum *args,
                    bool *isnull) {
    FmgrInfo flinfo;
    fmgr_info(lookup::function_oid(name, nargs, types), &flinfo);
    LOCAL_FCINFO(call, 3);
    InitFunctionCallInfoData(*call, &flinfo, nargs, InvalidOid, nullptr, nullptr);
    for (int i = 0; i < nargs; i++) call->args[i] = args[i];
    Datum result = FunctionCallInvoke(call);
    *isnull = call->isnull;
    return result;
}

// The session a rotated-out token stood for while sessrev.reuse_interval
// lasts; after it there is none, and the token is reported as stolen: the
// worker revokes the whole session in its own transaction
// (reuse_reports.hpp). Only where no worker takes the report does
// sessrev.validate_retired_token revoke it in this transaction, if it can
// write.
bool session_of_retired_token(HashBytea *hash, pg_uuid_t *session_id) {
    const lookup::Layout l = lookup::layout();
    const AttrNumber attnums[2] = {l.retired_session_id, l.retired_at};
    Datum values[2];
    bool isnull[2];
    if (!lookup::fetch_unique(l.retired_tokens, l.retired_tokens_pkey, F_BYTEAEQ, PointerGetDatum(hash), 2,
                              attnums, values, isnull) ||
        isnull[0] || isnull[1])
        return false;
    const int64 grace = static_cast<int64>(sessrev::settings::reuse_interval) * USECS_PER_SEC;
    // By the clock: a transaction opened before the rotation must not keep
    // the retired token in flight for as long as it stays open.
    if (GetCurrentTimestamp() - DatumGetTimestampTz(values[1]) <= grace) {
        memcpy(session_id, DatumGetUUIDP(values[0]), sizeof *session_id);
        return true;
    }
    sessrev::token::Hash reported;
    memcpy(reported.data(), hash->data, reported.size());
    if (sessrev::reuse_reports::push(reported) || XactReadOnly || RecoveryInProgress()) return false;
    // Distributed, on a node other than the coordinator, where no worker
    // took the report: the revocation is the coordinator's (its audit log is
    // there), which only this node's worker asks for (docs/SCALING.md).
    if (lookup::distributed() && lookup::layout().placement.group != 0) {
        ereport(WARNING, (errmsg("sessrev: a rotated-out token was reused, and no worker of this node takes the "
                                 "report to the coordinator"),
                          errhint("Set sessrev.database on every node, so that its worker runs.")));
        return false;
    }
    const Oid types[1] = {BYTEAOID};
    const NullableDatum args[1] = {{PointerGetDatum(hash), false}};
    bool result_null;
    call_internal("validate_retired_token", 1, types, args, &result_null);
    return false;
}

// Reads the latest committed row (plus this transaction's own changes)
// through the token's or the id's unique index into profile; true when it is a
// live session whose user id and metadata fit the caller's buffer.
bool read_live_session(lookup::Key by, Datum value, Profile *profile, Datum *user_id,
                       Datum *metadata) {
    const lookup::Layout l = lookup::layout();
    const AttrNumber attnums[7] = {l.id,           l.user_id,  l.revoked,   l.expires_at,
                                   l.last_active_at, l.metadata, l.created_at};
    Datum values[7];
    bool isnull[7];
    if (!lookup::fetch_unique(l.sessions, by == lookup::Key::token_hash ? l.token_index : l.id_index,
                              by == lookup::Key::token_hash ? F_BYTEAEQ : F_UUID_EQ, value, 7,
                              attnums, values, isnull))
        return false;
    for (bool null : isnull)
        if (null) return false;
    if (DatumGetBool(values[2])) return false;
    const cache::Times times{DatumGetTimestampTz(values[3]), DatumGetTimestampTz(values[4])};
    if (!lookup::times_are_live(times) || pending::session_revoked(values[0], DatumGetTimestampTz(values[6])))
        return false;
    memcpy(&profile->session_id, DatumGetUUIDP(values[0]), sizeof profile->session_id);
    profile->expires_at = times.expires_at;
    profile->last_active_at = times.last_active_at;
    *user_id = values[1];
    *metadata = values[5];
    return true;
}

// Copies the row's user id and metadata into the profile's payload when they
// fit; false when they do not (the profile then serves this call only).
bool pack(Profile *profile, Datum user_id, Datum metadata) {
    const text *user = DatumGetTextPP(user_id);
    const std::size_t user_length = VARSIZE_ANY_EXHDR(user);
    const std::size_t metadata_length = VARSIZE(DatumGetPointer(metadata));
    profile->user_id_length = static_cast<uint16>(Min(user_length, static_cast<std::size_t>(PG_UINT16_MAX)));
    profile->metadata_length = static_cast<uint16>(Min(metadata_length, static_cast<std::size_t>(PG_UINT16_MAX)));
    if (!session_cache::fits(user_length, metadata_length)) return false;
    memcpy(profile->payload, VARDATA_ANY(user), user_length);
    memcpy(profile->payload + user_length, DatumGetPointer(metadata), metadata_length);
    return true;
}

// A touch is due when last_active_at is at or before this.
TimestampTz touch_threshold() {
    int64 every = static_cast<int64>(sessrev::settings::touch_interval) * USECS_PER_SEC;
    const int64 idle = static_cast<int64>(sessrev::settings::idle_timeout) * USECS_PER_SEC;
    // Often enough that an active session never looks idle.
    if (idle > 0 && idle / 2 < every) every = idle / 2;
    return GetCurrentTransactionStartTimestamp() - every;
}

// A due touch makes last_active_at now(); gone when the session was revoked
// by a transaction that committed meanwhile.
enum class Touched { queued, written, skipped, gone };

Touched touch(const pg_uuid_t &session_id, TimestampTz threshold) {
    const TimestampTz now = GetCurrentTransactionStartTimestamp();
    if (sessrev::touch_queue::push({session_id, now, threshold})) return Touched::queued;
    // Distributed, a touch is written by this node's worker into the shard
    // held here (touch_writer.hpp); without a worker it is skipped.
    if (lookup::distributed()) return Touched::skipped;
    // No worker serves this database (or its queue is full): touch here,
    // without waiting for anyone (sessrev.touch_session).
    const Oid types[3] = {UUIDOID, TIMESTAMPTZOID, TIMESTAMPTZOID};
    const NullableDatum args[3] = {{UUIDPGetDatum(const_cast<pg_uuid_t *>(&session_id)), false},
                                   {TimestampTzGetDatum(now), false},
                                   {TimestampTzGetDatum(threshold), false}};
    bool isnull;
    const Datum written = call_internal("touch_session", 3, types, args, &isnull);
    if (isnull) return Touched::gone;
    return DatumGetBool(written) ? Touched::written : Touched::skipped;
}

// The result's row type (session_id uuid, user_id text, expires_at, last_active_at
// timestamptz, metadata jsonb), made once per backend and pinned: the executor
// frees a result descriptor after every call unless it is reference-counted,
// and copying one per call (InitMaterializedSRF) is a good part of the cost of
// a hit.
TupleDesc result_desc() {
    static TupleDesc desc = nullptr;
    if (desc != nullptr) return desc;
    MemoryContext caller = MemoryContextSwitchTo(TopMemoryContext);
    TupleDesc d = CreateTemplateTupleDesc(5);
    TupleDescInitEntry(d, 1, "session_id", UUIDOID, -1, 0);
    TupleDescInitEntry(d, 2, "user_id", TEXTOID, -1, 0);
    TupleDescInitEntry(d, 3, "expires_at", TIMESTAMPTZOID, -1, 0);
    TupleDescInitEntry(d, 4, "last_active_at", TIMESTAMPTZOID, -1, 0);
    TupleDescInitEntry(d, 5, "metadata", JSONBOID, -1, 0);
    d->tdrefcount = 1;  // never released: lives as long as the backend
    // Registered as a record type, so that a composite Datum can name it.
    BlessTupleDesc(d);
    MemoryContextSwitchTo(caller);
    desc = d;
    return desc;
}

// A validated session: its profile, and where its user id's bytes and its
// metadata's jsonb bytes (each without a varlena header) are, in the profile's
// payload on a hit, in the detoasted row on a miss.
struct Validated {
    Profile profile;
    const char *user_id;
    std::size_t user_id_length;
    const char *metadata;
    std::size_t metadata_length;
};

// Where heap_fill_tuple puts a varlena of length bytes at offset: behind a
// 1-byte header, unaligned, when that can hold it; else int-aligned behind 4.
struct Placed {
    std::size_t start;
    std::size_t end;
    bool short_header;
};

Placed place_varlena(std::size_t offset, std::size_t length) {
    if (VARHDRSZ_SHORT + length <= VARATT_SHORT_MAX) return {offset, offset + VARHDRSZ_SHORT + length, true};
    const std::size_t start = INTALIGN(offset);
    return {start, start + VARHDRSZ + length, false};
}

void write_varlena(char *at, const Placed &placed, const char *bytes, std::size_t length) {
    if (placed.short_header) {
        SET_VARSIZE_SHORT(at, VARHDRSZ_SHORT + length);
        memcpy(at + VARHDRSZ_SHORT, bytes, length);
    } else {
        SET_VARSIZE(at, VARHDRSZ + length);
        memcpy(at + VARHDRSZ, bytes, length);
    }
}

// The result as a composite datum, laid out as heap_form_tuple lays out
// result_desc() without nulls, written in one pass: the generic form, sizing
// and filling attribute by attribute, was a tenth of a cached call.
HeapTupleHeader row_of(const Validated &v) {
    const TupleDesc desc = result_desc();
    constexpr std::size_t hoff = MAXALIGN(offsetof(HeapTupleHeaderData, t_bits));
    // session_id uuid ('c' aligned), user_id text, expires_at and
    // last_active_at timestamptz ('d'), metadata jsonb.
    const Placed user_id = place_varlena(sizeof(pg_uuid_t), v.user_id_length);
    const std::size_t times = DOUBLEALIGN(user_id.end);
    const Placed metadata = place_varlena(times + 2 * sizeof(TimestampTz), v.metadata_length);
    const std::size_t length = hoff + metadata.end;

    HeapTupleHeader td = static_cast<HeapTupleHeader>(palloc0(length));
    HeapTupleHeaderSetDatumLength(td, length);
    HeapTupleHeaderSetTypeId(td, desc->tdtypeid);
    HeapTupleHeaderSetTypMod(td, desc->tdtypmod);
    HeapTupleHeaderSetNatts(td, desc->natts);
    td->t_hoff = hoff;
    td->t_infomask = HEAP_HASVARWIDTH;
    char *data = reinterpret_cast<char *>(td) + hoff;
    memcpy(data, &v.profile.session_id, sizeof(pg_uuid_t));
    write_varlena(data + user_id.start, user_id, v.user_id, v.user_id_length);
    memcpy(data + times, &v.profile.expires_at, sizeof(TimestampTz));
    memcpy(data + times + sizeof(TimestampTz), &v.profile.last_active_at, sizeof(TimestampTz));
    write_varlena(data + metadata.start, metadata, v.metadata, v.metadata_length);
    return td;
}

ReturnSetInfo *materialized(FunctionCallInfo fcinfo) {
    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    if (rsinfo == nullptr || !IsA(rsinfo, ReturnSetInfo) || !(rsinfo->allowedModes & SFRM_Materialize))
        throw sessrev::SqlError(ERRCODE_FEATURE_NOT_SUPPORTED,
                                "validate_session must be called where a set is accepted");
    rsinfo->returnMode = SFRM_Materialize;
    return rsinfo;
}

// No row: the executor makes the empty result itself.
Datum no_row(FunctionCallInfo fcinfo) {
    materialized(fcinfo);
    return (Datum) 0;
}

Datum one_row(FunctionCallInfo fcinfo, const Validated &v) {
    ReturnSetInfo *rsinfo = materialized(fcinfo);
    MemoryContext caller = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
    rsinfo->setResult = tuplestore_begin_heap(false, false, work_mem);
    rsinfo->setDesc = result_desc();
    MemoryContextSwitchTo(caller);
    HeapTupleData tuple;
    tuple.t_data = row_of(v);
    tuple.t_len = HeapTupleHeaderGetDatumLength(tuple.t_data);
    ItemPointerSetInvalid(&tuple.t_self);
    tuple.t_tableOid = InvalidOid;
    tuplestore_puttuple(rsinfo->setResult, &tuple);
    return (Datum) 0;
}

}  // namespace

namespace {

// New tokens (create_session, rotate_token) whose entries are filled once
// their transaction commits: before that, no other backend could find their
// row, and a rollback must leave nothing behind. Their tickets are read before
// the row is, since revocations no longer wait for the row (1.5): one that
// commits while this transaction is open (a pending revocation, the global
// cut-off) kills the fill.
struct Warm {
    cache::Key key;
    uint64 place;
    Profile profile;
    cache::FillTicket ticket;
};
constexpr int max_warm = 8;
Warm warm[max_warm];
int warm_count = 0;

void on_transaction_end(XactEvent event, void *) {
    switch (event) {
        case XACT_EVENT_COMMIT:
            for (int i = 0; i < warm_count; i++) {
                const Warm &w = warm[i];
                session_cache::fill(w.key, w.place, w.profile, w.ticket);
                cache::fill(w.key, w.place, {w.profile.expires_at, w.profile.last_active_at}, w.ticket);
            }
            warm_count = 0;
            break;
        case XACT_EVENT_ABORT:
        case XACT_EVENT_PARALLEL_ABORT:
        case XACT_EVENT_PREPARE:
        case XACT_EVENT_PARALLEL_COMMIT:
            warm_count = 0;
            break;
        default:
            break;
    }
}

// A subtransaction that rolls back takes its new tokens with it; fills are
// dropped conservatively (a miss, never a wrong answer).
void on_subtransaction_end(SubXactEvent event, SubTransactionId, SubTransactionId, void *) {
    if (event == SUBXACT_EVENT_ABORT_SUB) warm_count = 0;
}

}  // namespace

namespace {

// validate_session_record is executable by PUBLIC and answers only a role that
// may execute validate_session(text), so that this stays the one privilege to
// grant (and to dump), and a plan inlined for one role but run by another is
// checked for the role that runs it. The answer is kept for the current role
// until a function's privileges or a role's memberships change.
struct Permission {
    Oid role = InvalidOid;  // InvalidOid: not known
    bool allowed = false;
};
Permission permission;

void forget_permission(Datum, int, uint32) { permission.role = InvalidOid; }

void require_permission_to_validate() {
    const Oid role = GetUserId();
    if (permission.role != role) {
        const Oid types[1] = {TEXTOID};
        const bool allowed = sessrev::compat::may_execute(lookup::function_oid("validate_session", 1, types), role);
        permission.allowed = allowed;
        permission.role = role;
    }
    if (!permission.allowed)
        throw sessrev::SqlError(ERRCODE_INSUFFICIENT_PRIVILEGE, "permission denied for function validate_session");
}

}  // namespace

namespace sessrev::validation {

void register_callbacks() {
    RegisterXactCallback(on_transaction_end, nullptr);
    RegisterSubXactCallback(on_subtransaction_end, nullptr);
    CacheRegisterSyscacheCallback(PROCOID, forget_permission, 0);
    CacheRegisterSyscacheCallback(AUTHOID, forget_permission, 0);
    CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, forget_permission, 0);
}

}  // namespace sessrev::validation

// warm_session_cache(token text) RETURNS void: caches the session of a token
// this transaction has just created (or rotated to) once it commits. Internal:
// called by create_session and rotate_session_token, granted to nobody; it
// stores only what it reads from the row itself.
SESSREV_FUNCTION(warm_session_cache) {
    if (PG_ARGISNULL(0) || !session_cache::enabled() || !sessrev::arming::cache_may_serve() ||
        warm_count == max_warm)
        PG_RETURN_VOID();
    const text *token = PG_GETARG_TEXT_PP(0);
    const std::size_t length = VARSIZE_ANY_EXHDR(token);
    // Distributed: only a session whose shard is held here.
    const sessrev::routing::Route route = sessrev::routing::of_token(VARDATA_ANY(token), length);
    if (route.goes == sessrev::routing::Goes::local)
        lookup::at_shard(route.range);
    else if (route.goes != sessrev::routing::Goes::here)
        PG_RETURN_VOID();
    Warm &w = warm[warm_count];
    w.key = cache::Key{MyDatabaseId, lookup::layout().sessions, cache::Kind::token_hash, {}};
    w.place = cache::place_of(w.key, VARDATA_ANY(token), length);
    const sessrev::token::Hash hash = sessrev::token::sha256({VARDATA_ANY(token), length});
    memcpy(w.key.bytes, hash.data(), hash.size());
    HashBytea hash_bytea;
    SET_VARSIZE(&hash_bytea, sizeof hash_bytea);
    memcpy(hash_bytea.data, hash.data(), hash.size());
    w.ticket = cache::ticket(w.key);
    pg_memory_barrier();  // the ticket precedes the read's snapshot
    Datum user_id, metadata;
    if (read_live_session(lookup::Key::token_hash, PointerGetDatum(&hash_bytea), &w.profile,
                          &user_id, &metadata) &&
        pack(&w.profile, user_id, metadata))
        warm_count++;
    PG_RETURN_VOID();
}

namespace {

bool validate_here(const text *token, std::size_t length, Validated *found);

// The answer of the node of group (forwarded).
bool validate_at(int32 group, const text *token, Validated *found) {
    text *user_id;
    varlena *metadata;
    if (!sessrev::check_forwarding::validate(group, token, &found->profile, &user_id, &metadata)) return false;
    found->user_id = VARDATA_ANY(user_id);
    found->user_id_length = VARSIZE_ANY_EXHDR(user_id);
    found->metadata = VARDATA_ANY(metadata);
    found->metadata_length = VARSIZE_ANY_EXHDR(metadata);
    sessrev::current_session::remember(found->profile.session_id, found->user_id, found->user_id_length);
    return true;
}

// validate_session's work, whatever shape its answer takes: true, with
// *found, when the token stands for a live session, which then becomes the
// transaction's current one.
bool validate(FunctionCallInfo fcinfo, Validated *found) {
    // Until this validation succeeds, the transaction has no current session.
    sessrev::current_session::forget();
    if (PG_ARGISNULL(0)) return false;
    const text *token = PG_GETARG_TEXT_PP(0);
    const std::size_t length = VARSIZE_ANY_EXHDR(token);
    if (length == 0) return false;
    if (sessrev::check_forwarding::applies()) return validate_at(0, token, found);
    using sessrev::routing::Goes;
    const sessrev::routing::Route route = sessrev::routing::of_token(VARDATA_ANY(token), length);
    switch (route.goes) {
        case Goes::here: break;
        case Goes::local: lookup::at_shard(route.range); break;
        case Goes::remote:
            sessrev::routing::refuse_remote_if_unsafe();
            return validate_at(route.group, token, found);
        case Goes::everywhere:
            return sessrev::routing::live_anywhere([&] { return validate_here(token, length, found); },
                                                   [&](int32 group) { return validate_at(group, token, found); });
    }
    return validate_here(token, length, found);
}

// The token's session read here: from the cache, or the table (in the
// distributed layout, the shard at_shard chose).
bool validate_here(const text *token, std::size_t length, Validated *found) {
    // The token's cache set is fetched from memory while its SHA-256 is computed.
    cache::Key key{MyDatabaseId, lookup::layout().sessions, cache::Kind::token_hash, {}};
    const bool usable = session_cache::enabled() && sessrev::invalidation::cache_usable();
    uint64 place = 0;
    if (usable) {
        place = cache::place_of(key, VARDATA_ANY(token), length);
        session_cache::prefetch(place);
    }
    const sessrev::token::Hash hash = sessrev::token::sha256({VARDATA_ANY(token), length});
    memcpy(key.bytes, hash.data(), hash.size());
    if (sessrev::routing::prepared_change(key)) return false;

    Profile &profile = found->profile;
    cache::FillTicket ticket{};
    bool from_cache = usable && session_cache::lookup(key, place, &profile, &ticket) &&
                      profile.metadata_length >= VARHDRSZ &&
                      lookup::times_are_live({profile.expires_at, profile.last_active_at});
    bool cacheable = false;
    if (from_cache) {
        // The payload holds the user id's bytes, then the metadata with its header.
        found->user_id = profile.payload;
        found->user_id_length = profile.user_id_length;
        found->metadata = profile.payload + profile.user_id_length + VARHDRSZ;
        found->metadata_length = profile.metadata_length - VARHDRSZ;
    } else {
        Datum user_id, metadata;
        if (usable) {
            session_cache::count_miss(place);
            // Read before the lookup's snapshot: a fill racing a revocation is dead.
            ticket = cache::ticket(key);
        }
        HashBytea hash_bytea;
        SET_VARSIZE(&hash_bytea, sizeof hash_bytea);
        memcpy(hash_bytea.data, hash.data(), hash.size());
        bool live = read_live_session(lookup::Key::token_hash, PointerGetDatum(&hash_bytea),
                                      &profile, &user_id, &metadata);
        if (live) {
            // One too large to cache is counted by the fill, and answered from the table.
            pack(&profile, user_id, metadata);
            cacheable = usable && cache::may_fill();
        } else {
            // A rotated-out token still serves requests in flight (never cached).
            pg_uuid_t session_id;
            if (!session_of_retired_token(&hash_bytea, &session_id)) return false;
            cache::Key id_key{MyDatabaseId, lookup::layout().sessions, cache::Kind::session_id, {}};
            memcpy(id_key.bytes, session_id.data, UUID_LEN);
            if (sessrev::routing::prepared_change(id_key) ||
                !read_live_session(lookup::Key::session_id, UUIDPGetDatum(&session_id), &profile,
                                   &user_id, &metadata))
                return false;
        }
        // Both detoasted by the read, so their bytes stay in this call's memory.
        const text *user = DatumGetTextPP(user_id);
        found->user_id = VARDATA_ANY(user);
        found->user_id_length = VARSIZE_ANY_EXHDR(user);
        const varlena *stored = reinterpret_cast<const varlena *>(DatumGetPointer(metadata));
        found->metadata = VARDATA_ANY(stored);
        found->metadata_length = VARSIZE_ANY_EXHDR(stored);
    }

    const TimestampTz threshold = touch_threshold();
    if (profile.last_active_at <= threshold) {
        switch (touch(profile.session_id, threshold)) {
            case Touched::gone:
                return false;
            case Touched::queued:
                // The queued touch will write now(): cache what it will say.
                profile.last_active_at = GetCurrentTransactionStartTimestamp();
                if (from_cache) cacheable = true;
                break;
            case Touched::written:
                profile.last_active_at = GetCurrentTransactionStartTimestamp();
                cacheable = false;  // this transaction now has a write of its own
                break;
            case Touched::skipped:
                break;
        }
    }
    if (cacheable) {
        session_cache::fill(key, place, profile, ticket);
        cache::fill(key, place, {profile.expires_at, profile.last_active_at}, ticket);
    }

    sessrev::current_session::remember(profile.session_id, found->user_id, found->user_id_length);
    return true;
}

}  // namespace

// validate_session_record(token text, OUT session_id uuid, OUT user_id text,
//     OUT expires_at timestamptz, OUT last_active_at timestamptz,
//     OUT metadata jsonb) RETURNS record: the live session, or NULL. The SQL
// function validate_session (1.4) is a query over it that PostgreSQL inlines
// into the caller's, so a request pays for no function scan and no tuplestore.
SESSREV_FUNCTION(validate_session_record) {
    require_permission_to_validate();
    Validated found;
    if (!validate(fcinfo, &found)) PG_RETURN_NULL();
    return PointerGetDatum(row_of(found));
}

// validate_session(token text) RETURNS TABLE(...), as a set-returning C
// function: what validate_session is in SQL 1.2 and 1.3, kept for databases
// not yet updated to 1.4.
SESSREV_FUNCTION(validate_session) {
    Validated found;
    if (!validate(fcinfo, &found)) return no_row(fcinfo);
    return one_row(fcinfo, found);
}
