#include "current_session.hpp"
#include "compat.hpp"

#include "boundary.hpp"

extern "C" {
#include "access/xact.h"
#include "utils/builtins.h"
#include "utils/uuid.h"
}

#include <cstring>

namespace sessrev::current_session {
namespace {

constexpr int max_user_id_bytes = 256;

bool known = false;
pg_uuid_t session_id_;
char user_id_[max_user_id_bytes + 1];
// The subtransaction that set it: rolling that one back (ROLLBACK TO
// SAVEPOINT, an exception block) forgets it again.
SubTransactionId set_in = InvalidSubTransactionId;

void forget(XactEvent event, void *) {
    switch (event) {
        case XACT_EVENT_COMMIT:
        case XACT_EVENT_PARALLEL_COMMIT:
        case XACT_EVENT_ABORT:
        case XACT_EVENT_PARALLEL_ABORT:
        case XACT_EVENT_PREPARE:
            known = false;
            break;
        default:
            break;
    }
}

// Subtransaction ids grow: one at least as new as the subtransaction being
// rolled back was set inside it.
void forget_on_rollback(SubXactEvent event, SubTransactionId rolled_back, SubTransactionId, void *) {
    if (event == SUBXACT_EVENT_ABORT_SUB && known && set_in >= rolled_back) known = false;
}

}  // namespace

const char *user_id() { return known ? user_id_ : nullptr; }

void remember(const pg_uuid_t &session_id, const char *user_id, std::size_t length) {
    if (length > static_cast<std::size_t>(max_user_id_bytes))
        throw SqlError(ERRCODE_STRING_DATA_RIGHT_TRUNCATION, "user_id is too long");
    memcpy(&session_id_, &session_id, sizeof session_id_);
    memcpy(user_id_, user_id, length);
    user_id_[length] = '\0';
    known = true;
    set_in = GetCurrentSubTransactionId();
}

void forget() { known = false; }
const pg_uuid_t *session_id() { return known ? &session_id_ : nullptr; }

void register_callbacks() {
    RegisterXactCallback(forget, nullptr);
    RegisterSubXactCallback(forget_on_rollback, nullptr);
}

}  // namespace sessrev::current_session

namespace cs = sessrev::current_session;

// remember_current_session(session_id uuid, user_id text) RETURNS void. Called
// only by sessrev's own SECURITY DEFINER functions once they have checked the
// session; not granted to anyone.
SESSREV_FUNCTION(remember_current_session) {
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
        throw sessrev::SqlError(ERRCODE_NULL_VALUE_NOT_ALLOWED,
                                "session_id and user_id must not be NULL");
    const text *user = PG_GETARG_TEXT_PP(1);
    cs::remember(*PG_GETARG_UUID_P(0), VARDATA_ANY(user), VARSIZE_ANY_EXHDR(user));
    PG_RETURN_VOID();
}

// forget_current_session() RETURNS void: a failed validation leaves the
// transaction without a current session. Internal, like remember_current_session.
SESSREV_FUNCTION(forget_current_session) {
    cs::forget();
    PG_RETURN_VOID();
}

// current_session_id() RETURNS uuid: NULL when this transaction has none.
SESSREV_FUNCTION(current_session_id) {
    if (!cs::known) PG_RETURN_NULL();
    pg_uuid_t *result = static_cast<pg_uuid_t *>(palloc(sizeof(pg_uuid_t)));
    memcpy(result, &cs::session_id_, sizeof *result);
    PG_RETURN_UUID_P(result);
}

// current_user_id() RETURNS text: NULL when this transaction has none.
SESSREV_FUNCTION(current_user_id) {
    if (!cs::known) PG_RETURN_NULL();
    PG_RETURN_TEXT_P(cstring_to_text(cs::user_id_));
}
