// sessions_final_state(): the BEFORE UPDATE row trigger on sessrev.sessions
// that keeps revoked, expired and idle-expired final. Every writer passes
// here (the worker's touches, touch_session, forward_touch, extend_session,
// rotate_token, a direct UPDATE by the tables' owner), so the rule is written
// once: an update may leave a dead row dead or change it in other ways, never
// make it live again by the one rule (lookup::times_are_live, which
// session_is_live applies in SQL).
#include "boundary.hpp"
#include "session_lookup.hpp"

extern "C" {
#include "access/htup_details.h"
#include "commands/trigger.h"
#include "utils/timestamp.h"
#include "utils/rel.h"
}

namespace {

bool row_is_live(HeapTuple row, TupleDesc desc, const sessrev::lookup::Layout &l) {
    bool revoked_null, expires_null, active_null;
    const bool revoked = DatumGetBool(heap_getattr(row, l.revoked, desc, &revoked_null));
    const Datum expires_at = heap_getattr(row, l.expires_at, desc, &expires_null);
    const Datum last_active_at = heap_getattr(row, l.last_active_at, desc, &active_null);
    if (revoked_null || revoked || expires_null || active_null) return false;
    return sessrev::lookup::times_are_live(
        {DatumGetTimestampTz(expires_at), DatumGetTimestampTz(last_active_at)});
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
    if (!row_is_live(trigger->tg_trigtuple, desc, l) && row_is_live(trigger->tg_newtuple, desc, l)) {
        throw sessrev::SqlError(ERRCODE_CHECK_VIOLATION,
                                "a revoked, expired or idle-expired session is final: "
                                "no update may make it live again");
    }
    return PointerGetDatum(trigger->tg_newtuple);
}
