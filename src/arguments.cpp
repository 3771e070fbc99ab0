#include "arguments.hpp"
#include "compat.hpp"
#include "current_session.hpp"

extern "C" {
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
}

#include <string>

namespace sessrev::arguments {

text *required_text(FunctionCallInfo fcinfo, int n, const char *name) {
    if (PG_ARGISNULL(n))
        throw SqlError(ERRCODE_NULL_VALUE_NOT_ALLOWED, std::string(name) + " must not be NULL");
    return PG_GETARG_TEXT_PP(n);
}

text *user_id(FunctionCallInfo fcinfo, int n) {
    text *value = required_text(fcinfo, n, "user_id");
    const auto length = VARSIZE_ANY_EXHDR(value);
    if (length == 0)
        throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE, "user_id must not be empty");
    if (length > max_user_id_bytes)
        throw SqlError(ERRCODE_STRING_DATA_RIGHT_TRUNCATION,
                       "user_id is longer than " + std::to_string(max_user_id_bytes) + " bytes");
    return value;
}

text *reason(FunctionCallInfo fcinfo, int n) {
    if (PG_ARGISNULL(n)) return nullptr;
    text *value = PG_GETARG_TEXT_PP(n);
    if (VARSIZE_ANY_EXHDR(value) > max_reason_bytes)
        throw SqlError(ERRCODE_STRING_DATA_RIGHT_TRUNCATION,
                       "reason is longer than " + std::to_string(max_reason_bytes) + " bytes");
    return value;
}

Datum actor(FunctionCallInfo fcinfo, int n, bool *isnull) {
    *isnull = false;
    if (PG_ARGISNULL(n)) {
        const char *user = current_session::user_id();
        *isnull = user == nullptr;
        return *isnull ? Datum(0) : CStringGetTextDatum(user);
    }
    text *value = PG_GETARG_TEXT_PP(n);
    if (VARSIZE_ANY_EXHDR(value) > max_actor_bytes)
        throw SqlError(ERRCODE_STRING_DATA_RIGHT_TRUNCATION,
                       "revoked_by is longer than " + std::to_string(max_actor_bytes) + " bytes");
    return PointerGetDatum(value);
}

Datum non_negative_interval(FunctionCallInfo fcinfo, int n, const char *name) {
    if (PG_ARGISNULL(n))
        throw SqlError(ERRCODE_NULL_VALUE_NOT_ALLOWED, std::string(name) + " must not be NULL");
    const Interval *value = PG_GETARG_INTERVAL_P(n);
    if (value->month < 0 || value->day < 0 || value->time < 0)
        throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE, std::string(name) + " must not be negative");
    return PG_GETARG_DATUM(n);
}

}  // namespace sessrev::arguments
