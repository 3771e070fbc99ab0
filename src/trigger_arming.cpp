#include "trigger_arming.hpp"

#include "citus_placement.hpp"

#include "cache.hpp"
#include "jwt_cache.hpp"
#include "session_lookup.hpp"
#include "standby_records.hpp"

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_trigger.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
}

namespace sessrev::arming {
namespace {

struct Watched {
    Oid relation;
    const char *trigger;
};

// Set when a relcache invalidation of one of sessrev's tables reaches this
// backend; a transaction of its own that wrote checks pg_trigger before commit.
bool maybe_changed = false;
bool flush_at_commit = false;
bool resume_at_commit = false;

// Whether this transaction created or updated the extension (its
// pg_extension row is this transaction's).
bool extension_written_here(Oid extension) {
    Relation pg_extension = table_open(ExtensionRelationId, AccessShareLock);
    ScanKeyData key;
    ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(extension));
    SysScanDesc scan = systable_beginscan(pg_extension, ExtensionOidIndexId, true, nullptr, 1, &key);
    HeapTuple tuple = systable_getnext(scan);
    const bool here = HeapTupleIsValid(tuple) &&
                      TransactionIdIsCurrentTransactionId(HeapTupleHeaderGetXmin(tuple->t_data));
    systable_endscan(scan);
    table_close(pg_extension, AccessShareLock);
    return here;
}

// A table that sessrev's own script created in this transaction (CREATE
// EXTENSION, or an update adding a table), which no one could read before.
// Not any table made here: one swapped in by hand may have been filled before
// its triggers existed.
bool created_by_sessrev_here(Oid relation) {
    Relation rel = RelationIdGetRelation(relation);
    if (!RelationIsValid(rel)) return false;
    const bool created = rel->rd_createSubid != InvalidSubTransactionId;
    RelationClose(rel);
    if (!created) return false;
    // A shard that Citus made in this transaction (sessrev.distribute(), a
    // move, a new node) with its triggers, as sessrev's script makes a table.
    if (placement::names_a_shard(relation)) return true;
    const Oid sessrev = get_extension_oid("sessrev", true);
    return OidIsValid(sessrev) && getExtensionOfObject(RelationRelationId, relation) == sessrev &&
           extension_written_here(sessrev);
}

bool check_trigger(Relation pg_trigger, Oid relation, const char *name, State *state) {
    ScanKeyData keys[2];
    NameData tgname;
    namestrcpy(&tgname, name);
    ScanKeyInit(&keys[0], Anum_pg_trigger_tgrelid, BTEqualStrategyNumber, F_OIDEQ,
                ObjectIdGetDatum(relation));
    ScanKeyInit(&keys[1], Anum_pg_trigger_tgname, BTEqualStrategyNumber, F_NAMEEQ,
                NameGetDatum(&tgname));
    SysScanDesc scan = systable_beginscan(pg_trigger, TriggerRelidNameIndexId, true, nullptr, 2, keys);
    HeapTuple tuple = systable_getnext(scan);
    bool armed = false;
    if (HeapTupleIsValid(tuple)) {
        armed = reinterpret_cast<Form_pg_trigger>(GETSTRUCT(tuple))->tgenabled == TRIGGER_FIRES_ALWAYS;
        // A trigger created with its table hides nothing: no one saw the
        // table without it.
        if (TransactionIdIsCurrentTransactionId(HeapTupleHeaderGetXmin(tuple->t_data)) &&
            !created_by_sessrev_here(relation))
            state->changed_here = true;
    }
    systable_endscan(scan);
    return armed;
}

void on_relcache_invalidation(Datum, Oid relid) {
    if (lookup::may_be_sessrev_table(relid)) maybe_changed = true;
}

// This transaction's view of sessrev's triggers, when something may have
// changed them; false when there is nothing to judge. pg_upgrade restores an
// extension object by object, and serves nothing meanwhile.
bool read_state(State *state) {
    if (!maybe_changed || !cache::enabled() || IsBinaryUpgrade ||
        !OidIsValid(get_extension_oid("sessrev", true)))
        return false;
    lookup::Layout tables;
    if (!lookup::find_tables(&tables)) return false;
    *state = scan(tables);
    return true;
}

void on_transaction_end(XactEvent event, void *) {
    switch (event) {
        case XACT_EVENT_PRE_COMMIT:
        case XACT_EVENT_PARALLEL_PRE_COMMIT:
            if (!TransactionIdIsValid(GetTopTransactionIdIfAny())) break;
            {
                State state;
                const bool judged = read_state(&state);
                maybe_changed = false;
                if (!judged) break;
                if (!state.armed) {
                    // Before the disarming commits: no reader can miss what
                    // happens while the triggers are off.
                    const bool already = cache::suspended(MyDatabaseId);
                    cache::suspend(MyDatabaseId);
                    flush_at_commit = true;
                    if (!already)
                        ereport(WARNING,
                            (errmsg("sessrev: the cache no longer serves database \"%s\": "
                                    "sessrev's triggers are not all enabled ALWAYS",
                                    get_database_name(MyDatabaseId)),
                             errdetail("Checks read the tables until the triggers are re-armed."),
                             errhint("Run SELECT sessrev.arm_triggers(); as a superuser.")));
                } else if (state.changed_here || cache::suspended(MyDatabaseId)) {
                    // New tables (CREATE EXTENSION) have nothing in the cache:
                    // only a change to existing ones empties it.
                    flush_at_commit = true;
                    resume_at_commit = true;
                }
                if (flush_at_commit && standby_records::writes())
                    standby_records::write_arming(GetTopTransactionIdIfAny(), MyDatabaseId, !state.armed);
            }
            break;
        case XACT_EVENT_PRE_PREPARE:
            // Its commit would happen out of our sight: refused when it
            // disarms a trigger, or changes one of tables that existed before
            // (the cache would have to be flushed at that commit). Creating
            // the extension, as Citus does on its workers in a two-phase
            // commit, or adding a table with its triggers, hides nothing.
            {
                State state;
                if (read_state(&state) && (!state.armed || state.changed_here))
                    ereport(ERROR,
                            (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                             errmsg("cannot PREPARE a transaction that changed sessrev's triggers "
                                    "while the sessrev cache is enabled")));
            }
            break;
        case XACT_EVENT_COMMIT:
        case XACT_EVENT_PARALLEL_COMMIT:
            if (flush_at_commit) {
                cache::flush();
                jwt_cache::forget_build();
                jwt_cache::invalidate_global();
                if (resume_at_commit) cache::resume(MyDatabaseId);
            }
            flush_at_commit = resume_at_commit = false;
            break;
        case XACT_EVENT_ABORT:
        case XACT_EVENT_PARALLEL_ABORT:
        case XACT_EVENT_PREPARE:
            flush_at_commit = resume_at_commit = false;
            break;
        default:
            break;
    }
}

}  // namespace

namespace {

// Citus names a shard's trigger as the shard: <trigger>_<shard id>.
bool check_shard_trigger(Relation pg_trigger, Oid shard, const char *table, const char *trigger, State *state) {
    const char *relname = get_rel_name(shard);
    const std::size_t n = strlen(table);
    if (relname == nullptr || strncmp(relname, table, n) != 0) return false;
    char name[NAMEDATALEN * 2];
    snprintf(name, sizeof name, "%s%s", trigger, relname + n);
    return check_trigger(pg_trigger, shard, name, state);
}

}  // namespace

State scan(const lookup::Layout &l) {
    State state{true, false};
    Relation pg_trigger = table_open(TriggerRelationId, AccessShareLock);
    if (l.placement.where == placement::Where::distributed) {
        // Distributed: the triggers of the shards held here, which fire on
        // every change to their rows (Citus copies them with their state).
        const Watched references[] = {
            {l.jwt_denylist, "jwt_denylist_cache"},
            {l.jwt_denylist, "jwt_denylist_cache_truncate"},
            {l.global_cutoff, "global_token_cutoff_cache"},
            {l.global_cutoff, "global_token_cutoff_cache_truncate"},
        };
        for (const Watched &w : references) {
            const char *table = w.relation == l.jwt_denylist ? "jwt_denylist" : "global_token_cutoff";
            if (!check_shard_trigger(pg_trigger, w.relation, table, w.trigger, &state)) state.armed = false;
        }
        for (int i = 0; i < l.shards.n; i++) {
            if (!lookup::held_here(l.shards, i)) continue;
            const lookup::LocalShard &s = l.shards.local[i];
            if (!check_shard_trigger(pg_trigger, s.sessions, "sessions", "sessions_cache_invalidation", &state) ||
                !check_shard_trigger(pg_trigger, s.sessions, "sessions", "sessions_cache_flush", &state) ||
                !check_shard_trigger(pg_trigger, s.user_cutoffs, "user_token_cutoffs", "user_token_cutoffs_cache",
                                     &state) ||
                !check_shard_trigger(pg_trigger, s.user_cutoffs, "user_token_cutoffs",
                                     "user_token_cutoffs_cache_truncate", &state) ||
                !check_shard_trigger(pg_trigger, s.pending, "pending_revocations", "pending_revocations_cache",
                                     &state))
                state.armed = false;
        }
        table_close(pg_trigger, AccessShareLock);
        return state;
    }
    const Watched watched[] = {
        {l.sessions, "sessions_cache_invalidation"},
        {l.sessions, "sessions_cache_flush"},
        {l.jwt_denylist, "jwt_denylist_cache"},
        {l.jwt_denylist, "jwt_denylist_cache_truncate"},
        {l.user_cutoffs, "user_token_cutoffs_cache"},
        {l.user_cutoffs, "user_token_cutoffs_cache_truncate"},
        {l.global_cutoff, "global_token_cutoff_cache"},
        {l.global_cutoff, "global_token_cutoff_cache_truncate"},
    };
    for (const Watched &w : watched)
        if (!check_trigger(pg_trigger, w.relation, w.trigger, &state)) state.armed = false;
    // SQL 1.5's revocations recorded apart.
    if (OidIsValid(l.pending) && !check_trigger(pg_trigger, l.pending, "pending_revocations_cache", &state))
        state.armed = false;
    table_close(pg_trigger, AccessShareLock);
    return state;
}

void register_callbacks() {
    CacheRegisterRelcacheCallback(on_relcache_invalidation, 0);
    RegisterXactCallback(on_transaction_end, nullptr);
}

bool cache_may_serve() { return lookup::triggers_armed() && !cache::suspended(MyDatabaseId); }

}  // namespace sessrev::arming
