#include "remote_connection.hpp"

extern "C" {
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
}

#include <cstdio>
#include <cstring>

namespace sessrev::remote {
namespace {

char *error_of(const char *what, const char *detail) {
    return detail != nullptr && detail[0] != '\0' ? psprintf("%s: %s", what, detail) : pstrdup(what);
}

// Notices of the other side (its role may ask for debug output) are not
// this server's to log.
void ignore_notice(void *, const PGresult *) {}

// Waits for the connection's socket (or the latch, or the deadline); false at
// the deadline. Interrupts are served here: an error raised by one leaves
// in_exchange set, and the next use starts on a new connection.
bool wait_for(Connection *c, int events, TimestampTz deadline) {
    const long left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
    if (left <= 0) return false;
    const int rc = WaitLatchOrSocket(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH | events,
                                     PQsocket(c->conn), left, PG_WAIT_EXTENSION);
    if (rc & WL_LATCH_SET) ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
    return true;
}

}  // namespace

void disconnect(Connection *c) {
    if (c->pending != nullptr) PQclear(c->pending);
    c->pending = nullptr;
    if (c->conn != nullptr) PQfinish(c->conn);
    c->conn = nullptr;
    if (c->conninfo != nullptr) pfree(c->conninfo);
    c->conninfo = nullptr;
    c->in_exchange = false;
    c->prepared = 0;
}

bool connect(Connection *c, const char *conninfo, TimestampTz deadline, char **error, bool *reused) {
    if (reused != nullptr) *reused = false;
    if (c->conn != nullptr && !c->in_exchange && PQstatus(c->conn) == CONNECTION_OK &&
        PQtransactionStatus(c->conn) == PQTRANS_IDLE && strcmp(c->conninfo, conninfo) == 0) {
        if (reused != nullptr) *reused = true;
        return true;
    }
    disconnect(c);
    c->conn = PQconnectStart(conninfo);
    c->conninfo = MemoryContextStrdup(TopMemoryContext, conninfo);
    if (c->conn == nullptr || PQstatus(c->conn) == CONNECTION_BAD) {
        *error = error_of("could not connect", c->conn != nullptr ? PQerrorMessage(c->conn) : nullptr);
        disconnect(c);
        return false;
    }
    c->in_exchange = true;
    for (;;) {
        const PostgresPollingStatusType status = PQconnectPoll(c->conn);
        if (status == PGRES_POLLING_OK) {
            PQsetNoticeReceiver(c->conn, ignore_notice, nullptr);
            // Sends never block outside wait_for, where interrupts are served.
            if (PQsetnonblocking(c->conn, 1) != 0) {
                *error = error_of("could not connect", PQerrorMessage(c->conn));
                disconnect(c);
                return false;
            }
            c->in_exchange = false;
            return true;
        }
        if (status == PGRES_POLLING_FAILED ||
            !wait_for(c, status == PGRES_POLLING_READING ? WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE, deadline)) {
            *error = error_of("could not connect", PQerrorMessage(c->conn));
            disconnect(c);
            return false;
        }
    }
}

namespace {

PGresult *timed_out(Connection *c, char **error, char *sqlstate) {
    *error = pstrdup("no answer in time");
    if (sqlstate != nullptr) strlcpy(sqlstate, "57014", 6);
    disconnect(c);
    return nullptr;
}

// Flushes what was sent and reads every result: see exchange.
PGresult *finish(Connection *c, TimestampTz deadline, char **error, char *sqlstate) {
    for (;;) {
        const int flushed = PQflush(c->conn);
        if (flushed == 0) break;
        if (flushed < 0) {
            *error = error_of("could not send the statement", PQerrorMessage(c->conn));
            disconnect(c);
            return nullptr;
        }
        if (!wait_for(c, WL_SOCKET_WRITEABLE | WL_SOCKET_READABLE, deadline)) return timed_out(c, error, sqlstate);
        PQconsumeInput(c->conn);
    }
    // An interrupt may end this wait with a result read: c->pending keeps
    // it for disconnect to free.
    char *failure = nullptr;
    for (;;) {
        while (PQisBusy(c->conn)) {
            if (!wait_for(c, WL_SOCKET_READABLE, deadline)) return timed_out(c, error, sqlstate);
            if (PQconsumeInput(c->conn) == 0) {
                *error = error_of("the connection was lost", PQerrorMessage(c->conn));
                disconnect(c);
                return nullptr;
            }
        }
        PGresult *result = PQgetResult(c->conn);
        if (result == nullptr) break;
        if (PQresultStatus(result) != PGRES_TUPLES_OK && PQresultStatus(result) != PGRES_COMMAND_OK) {
            if (failure == nullptr) {
                failure = error_of("refused", PQresultErrorMessage(result));
                const char *state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
                if (sqlstate != nullptr && state != nullptr) strlcpy(sqlstate, state, 6);
            }
            PQclear(result);
            continue;
        }
        if (c->pending != nullptr) PQclear(c->pending);
        c->pending = result;
    }
    c->in_exchange = false;
    PGresult *last = c->pending;
    c->pending = nullptr;
    if (failure != nullptr) {
        if (last != nullptr) PQclear(last);
        *error = failure;
        return nullptr;
    }
    return last;
}

PGresult *unsent(Connection *c, char **error) {
    *error = error_of("could not send the statement", PQerrorMessage(c->conn));
    disconnect(c);
    return nullptr;
}

}  // namespace

PGresult *exchange(Connection *c, const char *sql, int nparams, const char *const *values,
                   TimestampTz deadline, char **error, char *sqlstate) {
    if (sqlstate != nullptr) sqlstate[0] = '\0';
    c->in_exchange = true;
    if (PQsendQueryParams(c->conn, sql, nparams, nullptr, values, nullptr, nullptr, 0) == 0) return unsent(c, error);
    return finish(c, deadline, error, sqlstate);
}

PGresult *exchange(Connection *c, const Statement &statement, const char *const *values, TimestampTz deadline,
                   char **error, char *sqlstate) {
    if (sqlstate != nullptr) sqlstate[0] = '\0';
    char name[32];
    snprintf(name, sizeof name, "sessrev_%u", statement.id);
    const uint32 bit = 1u << statement.id;
    if ((c->prepared & bit) == 0) {
        c->in_exchange = true;
        if (PQsendPrepare(c->conn, name, statement.sql, statement.nparams, nullptr) == 0) return unsent(c, error);
        PGresult *prepared = finish(c, deadline, error, sqlstate);
        if (prepared == nullptr) return nullptr;
        PQclear(prepared);
        c->prepared |= bit;
    }
    c->in_exchange = true;
    if (PQsendQueryPrepared(c->conn, name, statement.nparams, values, nullptr, nullptr, 0) == 0)
        return unsent(c, error);
    return finish(c, deadline, error, sqlstate);
}

}  // namespace sessrev::remote
