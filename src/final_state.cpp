// sessions_final_state(): the BEFORE UPDATE row trigger on sessrev.sessions
// that keeps revoked, expired and idle-expired final. Every writer passes
// here (the worker's touches, touch_session, forward_touch, extend_session,
// rotate_token, a direct UPDATE by the tables' owner), so the rule is written
// once: an update may leave a dead row dead or change it in other ways, never
// make it live again by the one rule (lookup::times_are_live, which
// session_is_live applies in SQL). Judged by the clock, not the transaction's
// start: a transaction opened while the session was live must not revive it
// once it is dead. A touch of a dead row (only last_active_at moves) is
// dropped without an error, so a batch of touches never fails for one.
#include "boundary.hpp"
#include "row_columns.hpp"
#include "session_lookup.hpp"

extern "C" {
#include "access/htup_details.h"
#include "commands/trigger.h"
#include "utils/timestamp.h"
#include "utils/rel.h"
}

namespace {

bool row_is_live(HeapTuple row, TupleDesc desc, const sessrev::lookup::Layout &l, TimestampTz now) {
    bool revoked_null, expires_null, active_null;
    const bool revoked = DatumGetBool(heap_getattr(row, l.revoked, desc, &revoked_null));
    const Datum expires_at = heap_getattr(row, l.expires_at, desc, &expires_null);
    const Datum last_active_at = heap_getattr(row, l.last_active_at, desc, &active_null);
    if (revoked_null || revoked || expires_null || active_null) return false;
    return sessrev::lookup::times_are_live_at({DatumGetTimestampTz(expires_at), DatumGetTimestampTz(last_active_at)},
                                              now);
}

// Only last_active_at may differ: a touch.
bool only_touched(HeapTuple old_row, HeapTuple new_row, TupleDesc desc, const sessrev::lookup::Layout &l) {
    for (AttrNumber attnum : {l.id, l.token_hash, l.user_id, l.revoked, l.expires_at, l.metadata, l.created_at})
        if (!sessrev::row_columns::same_bytes(old_row, new_row, desc, attnum)) return false;
    return true;
}

}  // namespace

SESSREV_FUNCTION(sessions_final_state) {
    if (!CALLED_AS_TRIGGER(fcinfo))
        throw sessrev::SqlError(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
                                "sessions_final_state() must be called as a trigger");
    const TriggerData *trigger = reinterpret_cast<TriggerData *>(fcinfo->context);
    if (!TRIGGER_FIRED_BY_UPDATE(trigger->tg_event) || !TRIGGER_FIRED_BEFORE(trigger->tg_event) ||
        !TRIGGER_FIRED_FOR_ROW(trigger->tg_event))
        throw sessrev::SqlError(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
                                "sessions_final_state() must fire BEFORE UPDATE FOR EACH ROW");
    const sessrev::lookup::Layout l = sessrev::lookup::layout();
    const TupleDesc desc = RelationGetDescr(trigger->tg_relation);
    const TimestampTz now = GetCurrentTimestamp();
    if (!row_is_live(trigger->tg_trigtuple, desc, l, now) && row_is_live(trigger->tg_newtuple, desc, l, now)) {
        if (only_touched(trigger->tg_trigtuple, trigger->tg_newtuple, desc, l)) return PointerGetDatum(nullptr);
        throw sessrev::SqlError(ERRCODE_CHECK_VIOLATION,
                                "a revoked, expired or idle-expired session is final: "
                                "no update may make it live again");
    }
    return PointerGetDatum(trigger->tg_newtuple);
}
