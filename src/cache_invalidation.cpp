#include "cache_invalidation.hpp"

#include "boundary.hpp"
#include "cache.hpp"
#include "session_lookup.hpp"

extern "C" {
#include "access/htup_details.h"
#include "access/xact.h"
#include "commands/trigger.h"
#include "miscadmin.h"
#include "utils/datum.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
}

#include <cstring>

namespace sessrev::invalidation {
namespace {

// Up to this many changed sessions are invalidated one by one; beyond it (a bulk
// revocation) the whole cache is flushed instead, so memory stays fixed.
constexpr int max_pending = 1024;

struct Changed {
    Oid relation;
    unsigned char token_hash[32];
    unsigned char id[UUID_LEN];
};

Changed pending[max_pending];
int pending_count = 0;
bool flush_at_commit = false;
bool pending_changes = false;

void forget() {
    pending_count = 0;
    flush_at_commit = false;
    pending_changes = false;
}

void apply() {
    if (flush_at_commit) {
        cache::flush();
        return;
    }
    for (int i = 0; i < pending_count; i++) {
        cache::Key key{MyDatabaseId, pending[i].relation, cache::Kind::token_hash, {}};
        memcpy(key.bytes, pending[i].token_hash, sizeof pending[i].token_hash);
        cache::invalidate(key);
        key.kind = cache::Kind::session_id;
        memset(key.bytes, 0, sizeof key.bytes);
        memcpy(key.bytes, pending[i].id, sizeof pending[i].id);
        cache::invalidate(key);
    }
}

void on_transaction_end(XactEvent event, void *) {
    switch (event) {
        case XACT_EVENT_PRE_PREPARE:
            // The commit of a prepared transaction happens elsewhere, out of our sight.
            if (pending_changes)
                ereport(ERROR,
                        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                         errmsg("cannot PREPARE a transaction that changed sessrev.sessions "
                                "while the sessrev cache is enabled")));
            break;
        case XACT_EVENT_COMMIT:
        case XACT_EVENT_PARALLEL_COMMIT:
            if (pending_changes) apply();
            forget();
            break;
        case XACT_EVENT_ABORT:
        case XACT_EVENT_PARALLEL_ABORT:
        case XACT_EVENT_PREPARE:
            forget();
            break;
        default:
            break;
    }
}

Datum attribute(HeapTuple tuple, TupleDesc desc, AttrNumber attnum, bool *isnull) {
    return heap_getattr(tuple, attnum, desc, isnull);
}

// An update that leaves a session at least as live as before (validate_session
// moving last_active_at forward, a longer expiry) cannot make a cached answer
// wrong, since a hit re-checks the cached times: no invalidation needed.
bool only_extends_life(HeapTuple old_row, HeapTuple new_row, TupleDesc desc,
                       const lookup::Layout &l) {
    bool n1, n2;
    if (DatumGetBool(attribute(new_row, desc, l.revoked, &n1)) || n1) return false;
    for (AttrNumber key : {l.id, l.token_hash}) {
        Datum a = attribute(old_row, desc, key, &n1);
        Datum b = attribute(new_row, desc, key, &n2);
        if (n1 || n2 || !datumIsEqual(a, b, TupleDescAttr(desc, key - 1)->attbyval,
                                      TupleDescAttr(desc, key - 1)->attlen))
            return false;
    }
    for (AttrNumber time : {l.expires_at, l.last_active_at}) {
        TimestampTz before = DatumGetTimestampTz(attribute(old_row, desc, time, &n1));
        TimestampTz after = DatumGetTimestampTz(attribute(new_row, desc, time, &n2));
        if (n1 || n2 || after < before) return false;
    }
    return true;
}

// A row that was revoked, or expired long ago, has no live entry in the cache:
// revocation invalidated it at its commit, and a hit re-checks expiry (the day
// of margin covers readers whose transaction started before the expiry). Bulk
// cleanup deletes only such rows, so it leaves the cache alone.
bool was_dead(HeapTuple old_row, TupleDesc desc, const lookup::Layout &l) {
    bool isnull;
    if (DatumGetBool(attribute(old_row, desc, l.revoked, &isnull)) && !isnull) return true;
    TimestampTz expires_at = DatumGetTimestampTz(attribute(old_row, desc, l.expires_at, &isnull));
    return !isnull && expires_at < GetCurrentTimestamp() - USECS_PER_DAY;
}

void record(HeapTuple old_row, TupleDesc desc, Oid relation, const lookup::Layout &l) {
    pending_changes = true;
    if (flush_at_commit) return;
    if (pending_count == max_pending) {
        flush_at_commit = true;
        return;
    }
    Changed &c = pending[pending_count++];
    c.relation = relation;
    bool isnull;
    bytea *hash = DatumGetByteaPP(attribute(old_row, desc, l.token_hash, &isnull));
    memset(c.token_hash, 0, sizeof c.token_hash);
    if (!isnull)
        memcpy(c.token_hash, VARDATA_ANY(hash),
               Min(VARSIZE_ANY_EXHDR(hash), static_cast<Size>(sizeof c.token_hash)));
    pg_uuid_t *id = DatumGetUUIDP(attribute(old_row, desc, l.id, &isnull));
    memset(c.id, 0, sizeof c.id);
    if (!isnull) memcpy(c.id, id->data, sizeof c.id);
}

}  // namespace

void register_callbacks() { RegisterXactCallback(on_transaction_end, nullptr); }

bool pending_in_transaction() { return pending_changes; }

}  // namespace sessrev::invalidation

// sessions_changed(): AFTER UPDATE OR DELETE (per row) and AFTER TRUNCATE trigger
// on sessrev.sessions.
SESSREV_FUNCTION(sessions_changed) {
    using namespace sessrev::invalidation;
    if (!CALLED_AS_TRIGGER(fcinfo))
        throw sessrev::SqlError(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
                                "sessions_changed() must be called as a trigger");
    if (!sessrev::cache::enabled()) return PointerGetDatum(nullptr);
    TriggerData *trigger = reinterpret_cast<TriggerData *>(fcinfo->context);
    TriggerEvent event = trigger->tg_event;
    if (TRIGGER_FIRED_BY_TRUNCATE(event) || !TRIGGER_FIRED_FOR_ROW(event)) {
        pending_changes = true;
        flush_at_commit = true;
        return PointerGetDatum(nullptr);
    }
    const sessrev::lookup::Layout &l = sessrev::lookup::layout();
    Relation rel = trigger->tg_relation;
    TupleDesc desc = RelationGetDescr(rel);
    if (was_dead(trigger->tg_trigtuple, desc, l)) return PointerGetDatum(nullptr);
    if (TRIGGER_FIRED_BY_UPDATE(event) &&
        only_extends_life(trigger->tg_trigtuple, trigger->tg_newtuple, desc, l))
        return PointerGetDatum(nullptr);
    record(trigger->tg_trigtuple, desc, RelationGetRelid(rel), l);
    return PointerGetDatum(nullptr);
}
