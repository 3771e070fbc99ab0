// The C++/PostgreSQL error boundary. Every SQL-callable function goes through
// SESSREV_FUNCTION, and every PostgreSQL call made while C++ objects with
// destructors are alive goes through pg_call. Nothing else in sessrev catches,
// throws across, or longjmps across this line.
//
//   C++ exception -> PostgreSQL: guarded() converts it to ereport(ERROR) after
//     the catch block has ended, so the C++ runtime is left clean.
//   PostgreSQL ERROR -> C++: pg_call() catches the longjmp with PG_TRY, copies
//     the error, and throws PgError, so destructors run; guarded() rethrows the
//     original error with its SQLSTATE intact.
#pragma once

extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "utils/elog.h"
#include "utils/memutils.h"
}

#include <cstdio>
#include <exception>
#include <new>
#include <string>
#include <type_traits>
#include <utility>

namespace sessrev {

// An error meant for the SQL caller: a message and its SQLSTATE.
class SqlError final : public std::exception {
public:
    SqlError(int sqlstate, std::string message)
        : sqlstate_(sqlstate), message_(std::move(message)) {}
    const char *what() const noexcept override { return message_.c_str(); }
    int sqlstate() const noexcept { return sqlstate_; }

private:
    int sqlstate_;
    std::string message_;
};

// A PostgreSQL error caught by pg_call; the ErrorData lives in the memory
// context that was current when pg_call started.
class PgError final : public std::exception {
public:
    explicit PgError(ErrorData *edata) : edata_(edata) {}
    const char *what() const noexcept override { return edata_->message; }
    ErrorData *edata() const noexcept { return edata_; }

private:
    ErrorData *edata_;
};

// Runs f and returns the PostgreSQL error it raised, or nullptr. The error is
// copied into the memory context that was current on entry. A C++ exception
// from f is caught inside PG_TRY (leaving it by unwinding would leave
// PostgreSQL's error stack pointing here) and rethrown once PG_TRY is over.
template <typename F>
ErrorData *catch_pg_error(F &f) {
    MemoryContext caller_context = CurrentMemoryContext;
    ErrorData *volatile edata = nullptr;
    std::exception_ptr cpp_exception;
    PG_TRY();
    {
        try {
            f();
        } catch (...) {
            cpp_exception = std::current_exception();
        }
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(caller_context);
        // Copying may itself fail (out of memory): that error must not
        // longjmp over the C++ frames above either.
        PG_TRY();
        { edata = CopyErrorData(); }
        PG_CATCH();
        { edata = nullptr; }
        PG_END_TRY();
        MemoryContextSwitchTo(caller_context);
        FlushErrorState();
        if (edata == nullptr) cpp_exception = std::make_exception_ptr(std::bad_alloc());
    }
    PG_END_TRY();
    if (cpp_exception) std::rethrow_exception(cpp_exception);
    return edata;
}

// Runs f, which calls PostgreSQL, turning an ERROR into PgError. f itself must
// not own C++ objects with destructors: the longjmp skips its frame.
template <typename F>
auto pg_call(F &&f) -> decltype(f()) {
    using Result = decltype(f());
    if constexpr (std::is_void_v<Result>) {
        if (ErrorData *edata = catch_pg_error(f)) throw PgError(edata);
    } else {
        Result result{};
        auto assign = [&] { result = f(); };
        if (ErrorData *edata = catch_pg_error(assign)) throw PgError(edata);
        return result;
    }
}

// Calls body, a C entry point's C++ part (an SQL function, the worker's main);
// any C++ exception becomes an ereport(ERROR) raised only once the catch block
// is over (a longjmp out of a catch block would corrupt the C++ runtime's
// record of exceptions in flight).
template <typename Body>
void guarded_entry(const char *function_name, Body &&body) {
    ErrorData *pg_error = nullptr;
    int sqlstate = ERRCODE_INTERNAL_ERROR;
    char message[512];  // written only on a failure: no clearing per call
    try {
        body();
        return;
    } catch (const PgError &e) {
        pg_error = e.edata();
    } catch (const SqlError &e) {
        sqlstate = e.sqlstate();
        std::snprintf(message, sizeof message, "%s", e.what());
    } catch (const std::bad_alloc &) {
        sqlstate = ERRCODE_OUT_OF_MEMORY;
        std::snprintf(message, sizeof message, "out of memory");
    } catch (const std::exception &e) {
        std::snprintf(message, sizeof message, "internal error in %s: %s", function_name, e.what());
    } catch (...) {
        std::snprintf(message, sizeof message, "internal error in %s", function_name);
    }
    if (pg_error != nullptr) ReThrowError(pg_error);
    ereport(ERROR, (errcode(sqlstate), errmsg("%s", message)));
    pg_unreachable();
}

template <Datum (*Body)(FunctionCallInfo)>
Datum guarded(FunctionCallInfo fcinfo, const char *function_name) {
    Datum result = 0;
    guarded_entry(function_name, [&] { result = Body(fcinfo); });
    return result;
}

}  // namespace sessrev

// Declares an SQL-callable function whose body is C++ run inside guarded().
// The body may call PostgreSQL directly only while it owns no object with a
// destructor; otherwise it wraps the call in pg_call.
#define SESSREV_FUNCTION(name)                                                     \
    static Datum name##_body([[maybe_unused]] FunctionCallInfo fcinfo);            \
    extern "C" {                                                                   \
    PG_FUNCTION_INFO_V1(name);                                                     \
    Datum name(PG_FUNCTION_ARGS) { return sessrev::guarded<name##_body>(fcinfo, #name); } \
    }                                                                              \
    static Datum name##_body([[maybe_unused]] FunctionCallInfo fcinfo)
