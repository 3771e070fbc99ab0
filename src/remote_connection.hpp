// A libpq connection that sessrev keeps open to another server, and one
// parameterized statement over it, waiting on the backend's latch so that
// interrupts (a cancel, statement_timeout, a shutdown) are served meanwhile.
// Used by touch forwarding (a standby's worker to its primary) and by check
// forwarding (a Citus worker's backend to the coordinator).
#pragma once

extern "C" {
#include "postgres.h"

#include "datatype/timestamp.h"
#include "libpq-fe.h"
}

namespace sessrev::remote {

struct Connection {
    PGconn *conn = nullptr;
    char *conninfo = nullptr;  // what conn was made with (TopMemoryContext)
    bool in_exchange = false;  // an interrupt left a statement unread
    uint32 prepared = 0;       // the Statement ids prepared on conn
    PGresult *pending = nullptr;  // read, not yet handed back (freed by disconnect)
};

// A statement prepared once per connection (named sessrev_<id>), so the
// server parses and plans it once. Every name in sql is schema-qualified:
// it runs with the remote role's search_path.
struct Statement {
    uint32 id;  // below 32, one per statement text
    const char *sql;
    int nparams;
};

// Makes sure c is connected with conninfo (reusing an open connection made
// with the same conninfo, and saying so in *reused); false with *error set
// (palloc'd) when it is not by the deadline.
bool connect(Connection *c, const char *conninfo, TimestampTz deadline, char **error, bool *reused = nullptr);

// Sends sql with its text parameters and reads every result; the last one
// (to PQclear), or nullptr with *error set when the statement failed or no
// answer came by the deadline; with sqlstate (6 chars), the server's SQLSTATE
// of a refusal ("" for a failure of the connection). A failure leaves c
// disconnected only when the connection cannot carry another statement.
PGresult *exchange(Connection *c, const char *sql, int nparams, const char *const *values,
                   TimestampTz deadline, char **error, char *sqlstate = nullptr);

// exchange, of a Statement: prepared on c first if it is not yet.
PGresult *exchange(Connection *c, const Statement &statement, const char *const *values, TimestampTz deadline,
                   char **error, char *sqlstate = nullptr);

void disconnect(Connection *c);

}  // namespace sessrev::remote
