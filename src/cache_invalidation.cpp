#include "cache_invalidation.hpp"
#include "compat.hpp"

#include "boundary.hpp"
#include "cache.hpp"
#include "in_doubt.hpp"
#include "jwt_cache.hpp"
#include "session_lookup.hpp"
#include "settings.hpp"
#include "standby_records.hpp"
#include "token.hpp"
#include "trigger_arming.hpp"
#include "worker.hpp"

extern "C" {
#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "commands/trigger.h"
#include "miscadmin.h"
#include "utils/datum.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
}

#include <cstring>
#include <string>

namespace sessrev::invalidation {
namespace {

// The epoch buckets of what this transaction changed: fixed memory however
// many rows it changes, and never a flush of the whole cache.
constexpr uint32 bucket_words = cache::buckets / 64;
uint64 pending[bucket_words];
bool any_pending = false;
bool flush_at_commit = false;
bool global_cutoff_changed = false;
bool pending_changes = false;
bool revocations_recorded = false;  // rows added to pending_revocations
// The keys themselves, for hot standbys (standby_records.hpp): their buckets
// depend on each server's secret. Past the limit, the standby flushes.
constexpr int max_keys = 256;
cache::Key keys[max_keys];
int key_count = 0;
bool too_many_keys = false;
standby_records::Addition additions[max_keys];
int addition_count = 0;
bool too_many_additions = false;

void forget() {
    if (any_pending) memset(pending, 0, sizeof pending);
    any_pending = false;
    key_count = 0;
    too_many_keys = false;
    addition_count = 0;
    too_many_additions = false;
    flush_at_commit = false;
    global_cutoff_changed = false;
    pending_changes = false;
    revocations_recorded = false;
}

void apply() {
    if (global_cutoff_changed) jwt_cache::invalidate_global();
    if (flush_at_commit) {
        cache::flush();
        return;
    }
    if (!any_pending) return;
    for (uint32 w = 0; w < bucket_words; w++)
        for (uint64 bits = pending[w]; bits != 0; bits &= bits - 1)
            cache::invalidate_bucket(w * 64 + static_cast<uint32>(__builtin_ctzll(bits)));
}

// Before the commit (or PREPARE) record: a standby must put what this
// transaction changed in doubt before its commit can be visible there.
void tell_standbys() {
    const standby_records::Changes changes{keys,      key_count,      flush_at_commit || too_many_keys,
                                           global_cutoff_changed,     additions,
                                           addition_count,            too_many_additions};
    if (!pending_changes || !standby_records::writes() ||
        (key_count == 0 && addition_count == 0 && !changes.all && !changes.global && !changes.all_filters))
        return;
    standby_records::write_changes(GetTopTransactionIdIfAny(), changes);
}

void on_transaction_end(XactEvent event, void *) {
    switch (event) {
        case XACT_EVENT_PRE_COMMIT:
            if (TransactionIdIsValid(GetTopTransactionIdIfAny())) tell_standbys();
            break;
        case XACT_EVENT_PRE_PREPARE:
            // Its commit happens elsewhere, out of our sight: what it changed
            // stays in doubt until it has ended.
            if (pending_changes && TransactionIdIsValid(GetTopTransactionIdIfAny())) {
                tell_standbys();
                in_doubt::add(GetTopTransactionIdIfAny(), pending, flush_at_commit, global_cutoff_changed);
            }
            break;
        case XACT_EVENT_COMMIT:
        case XACT_EVENT_PARALLEL_COMMIT:
            if (pending_changes) apply();
            if (revocations_recorded) worker::request_apply();
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

// An update that only moves last_active_at forward (a touch) cannot make a
// cached answer wrong: a hit re-checks the cached times, and a touch queued by
// validate_session has already refreshed its entries. Anything else that a
// cached answer holds (revocation, expiry, user id, metadata, the token) must
// invalidate, so that hits and the table give the same row.
bool only_touched(HeapTuple old_row, HeapTuple new_row, TupleDesc desc, const lookup::Layout &l) {
    bool n1, n2;
    if (DatumGetBool(attribute(new_row, desc, l.revoked, &n1)) || n1) return false;
    for (AttrNumber key : {l.id, l.token_hash, l.user_id, l.metadata, l.expires_at}) {
        Datum a = attribute(old_row, desc, key, &n1);
        Datum b = attribute(new_row, desc, key, &n2);
        if (n1 || n2 || !datum_image_eq(a, b, TupleDescAttr(desc, key - 1)->attbyval,
                                        TupleDescAttr(desc, key - 1)->attlen))
            return false;
    }
    TimestampTz before = DatumGetTimestampTz(attribute(old_row, desc, l.last_active_at, &n1));
    TimestampTz after = DatumGetTimestampTz(attribute(new_row, desc, l.last_active_at, &n2));
    return !n1 && !n2 && after >= before;
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

void record(const cache::Key &key) {
    const uint32 bucket = cache::bucket_of(key);
    pending[bucket / 64] |= UINT64CONST(1) << (bucket % 64);
    any_pending = true;
    if (!standby_records::writes()) return;
    if (key_count < max_keys)
        keys[key_count++] = key;
    else
        too_many_keys = true;
}

void record_session(HeapTuple old_row, TupleDesc desc, Oid relation, const lookup::Layout &l) {
    bool isnull;
    cache::Key key{MyDatabaseId, relation, cache::Kind::token_hash, {}};
    Datum hash_datum = attribute(old_row, desc, l.token_hash, &isnull);
    if (!isnull) {
        bytea *hash = DatumGetByteaPP(hash_datum);
        memcpy(key.bytes, VARDATA_ANY(hash),
               Min(VARSIZE_ANY_EXHDR(hash), static_cast<Size>(sizeof key.bytes)));
    }
    record(key);
    key.kind = cache::Kind::session_id;
    memset(key.bytes, 0, sizeof key.bytes);
    Datum id = attribute(old_row, desc, l.id, &isnull);
    if (!isnull) memcpy(key.bytes, DatumGetUUIDP(id)->data, UUID_LEN);
    record(key);
}

// Set before this transaction commits: no reader can miss a committed row.
void add_to_filter(jwt_cache::Filter filter, const token::Hash &hash) {
    jwt_cache::add(filter, hash);
    if (!standby_records::writes()) return;
    if (addition_count < max_keys)
        additions[addition_count++] = {filter, hash};
    else
        too_many_additions = true;
}

AttrNumber attnum_of(TupleDesc desc, const char *column) {
    for (int i = 0; i < desc->natts; i++) {
        Form_pg_attribute a = TupleDescAttr(desc, i);
        if (!a->attisdropped && strcmp(NameStr(a->attname), column) == 0) return a->attnum;
    }
    elog(ERROR, "sessrev: column \"%s\" not found", column);
}

// SHA-256 of a text column; false when it is NULL.
bool hash_of(HeapTuple row, TupleDesc desc, const char *column, token::Hash *hash) {
    bool isnull;
    Datum value = attribute(row, desc, attnum_of(desc, column), &isnull);
    if (isnull) return false;
    text *t = DatumGetTextPP(value);
    *hash = token::sha256({VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)});
    return true;
}

}  // namespace

void register_callbacks() { RegisterXactCallback(on_transaction_end, nullptr); }

bool pending_in_transaction() { return pending_changes; }

bool cache_usable() {
    // A standby serves only while it follows its primary's records.
    return cache::enabled() && (settings::standby_cache || !RecoveryInProgress()) && !pending_changes &&
           arming::cache_may_serve();
}

}  // namespace sessrev::invalidation

namespace {

TriggerData *trigger_data(FunctionCallInfo fcinfo, const char *name) {
    if (!CALLED_AS_TRIGGER(fcinfo))
        throw sessrev::SqlError(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
                                std::string(name) + "() must be called as a trigger");
    return reinterpret_cast<TriggerData *>(fcinfo->context);
}

}  // namespace

// sessions_changed(): AFTER UPDATE OR DELETE (per row) and AFTER TRUNCATE trigger
// on sessrev.sessions.
SESSREV_FUNCTION(sessions_changed) {
    using namespace sessrev::invalidation;
    TriggerData *trigger = trigger_data(fcinfo, "sessions_changed");
    if (!sessrev::cache::enabled()) return PointerGetDatum(nullptr);
    TriggerEvent event = trigger->tg_event;
    if (TRIGGER_FIRED_BY_TRUNCATE(event) || !TRIGGER_FIRED_FOR_ROW(event)) {
        pending_changes = true;
        flush_at_commit = true;
        return PointerGetDatum(nullptr);
    }
    const sessrev::lookup::Layout l = sessrev::lookup::layout();
    Relation rel = trigger->tg_relation;
    TupleDesc desc = RelationGetDescr(rel);
    if (was_dead(trigger->tg_trigtuple, desc, l)) return PointerGetDatum(nullptr);
    if (TRIGGER_FIRED_BY_UPDATE(event) &&
        only_touched(trigger->tg_trigtuple, trigger->tg_newtuple, desc, l))
        return PointerGetDatum(nullptr);
    pending_changes = true;
    record_session(trigger->tg_trigtuple, desc, RelationGetRelid(rel), l);
    return PointerGetDatum(nullptr);
}

// jwt_tables_changed(): AFTER INSERT OR UPDATE OR DELETE (per row) and AFTER
// TRUNCATE trigger on jwt_denylist, user_token_cutoffs and global_token_cutoff.
SESSREV_FUNCTION(jwt_tables_changed) {
    using namespace sessrev::invalidation;
    namespace jwt_cache = sessrev::jwt_cache;
    TriggerData *trigger = trigger_data(fcinfo, "jwt_tables_changed");
    if (!jwt_cache::enabled()) return PointerGetDatum(nullptr);
    pending_changes = true;
    Relation rel = trigger->tg_relation;
    const Oid relid = RelationGetRelid(rel);
    // Distributed: user_token_cutoffs' shard that fired.
    if (sessrev::lookup::distributed())
        sessrev::lookup::at_shard(sessrev::lookup::range_of_shard(sessrev::lookup::layout().shards, relid));
    const sessrev::lookup::Layout l = sessrev::lookup::layout();
    TriggerEvent event = trigger->tg_event;
    if (relid == l.global_cutoff) {
        global_cutoff_changed = true;
        // The emergency logout's cut-off revokes sessions too (pending_revocations.hpp).
        if (sessrev::cache::enabled()) flush_at_commit = true;
        return PointerGetDatum(nullptr);
    }
    if (TRIGGER_FIRED_BY_TRUNCATE(event) || !TRIGGER_FIRED_FOR_ROW(event)) {
        // An emptied denylist leaves extra filter bits, which only cost lookups.
        if (relid == l.user_cutoffs) flush_at_commit = true;
        return PointerGetDatum(nullptr);
    }
    TupleDesc desc = RelationGetDescr(rel);
    HeapTuple new_row = TRIGGER_FIRED_BY_UPDATE(event)   ? trigger->tg_newtuple
                        : TRIGGER_FIRED_BY_INSERT(event) ? trigger->tg_trigtuple
                                                         : nullptr;
    HeapTuple old_row = TRIGGER_FIRED_BY_INSERT(event) ? nullptr : trigger->tg_trigtuple;
    sessrev::token::Hash hash;
    if (relid == l.jwt_denylist) {
        if (new_row != nullptr && hash_of(new_row, desc, "jti", &hash)) add_to_filter(jwt_cache::Filter::jti, hash);
    } else if (relid == l.user_cutoffs) {
        if (new_row != nullptr && hash_of(new_row, desc, "user_id", &hash))
            add_to_filter(jwt_cache::Filter::user, hash);
        if (old_row != nullptr && hash_of(old_row, desc, "user_id", &hash)) {
            sessrev::cache::Key key{MyDatabaseId, relid, sessrev::cache::Kind::user_cutoff, {}};
            memcpy(key.bytes, hash.data(), hash.size());
            record(key);
        }
    }
    return PointerGetDatum(nullptr);
}

// pending_revocations_changed(): AFTER INSERT OR UPDATE trigger (per row) on
// pending_revocations (SQL 1.5). A revocation
// recorded apart changes what checks answer for sessions the cache may hold:
// the whole cache is flushed at commit (such revocations are rare: they
// happen only while another transaction holds a revoked row). A user's JWT
// cut-off among them joins the user filter before the commit, as
// user_token_cutoffs' rows do.
SESSREV_FUNCTION(pending_revocations_changed) {
    using namespace sessrev::invalidation;
    namespace jwt_cache = sessrev::jwt_cache;
    TriggerData *trigger = trigger_data(fcinfo, "pending_revocations_changed");
    const TriggerEvent event = trigger->tg_event;
    if (TRIGGER_FIRED_BY_INSERT(event)) revocations_recorded = true;
    if (!sessrev::cache::enabled() && !jwt_cache::enabled()) return PointerGetDatum(nullptr);
    pending_changes = true;
    if (sessrev::cache::enabled()) flush_at_commit = true;
    if (!jwt_cache::enabled() || !TRIGGER_FIRED_FOR_ROW(event) || TRIGGER_FIRED_BY_DELETE(event))
        return PointerGetDatum(nullptr);
    HeapTuple new_row = TRIGGER_FIRED_BY_UPDATE(event) ? trigger->tg_newtuple : trigger->tg_trigtuple;
    sessrev::token::Hash hash;
    if (hash_of(new_row, RelationGetDescr(trigger->tg_relation), "user_id", &hash))
        add_to_filter(jwt_cache::Filter::user, hash);
    return PointerGetDatum(nullptr);
}
