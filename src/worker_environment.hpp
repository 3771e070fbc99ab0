// The worker's settings are the server's, never a database's or a role's.
// BackgroundWorkerInitializeConnection applies ALTER DATABASE ... SET and
// ALTER ROLE ... SET as any connection does; a database owner could so make
// the worker run as another role (role), read-only
// (default_transaction_read_only), under a timeout, another isolation level
// or search_path, and stop its cleanup and touches. Every setting an ordinary
// role may attach (the PGC_USERSET ones) is taken before connecting and put
// back after; settings only a superuser can attach are the superuser's to set.
#pragma once

namespace sessrev::worker_environment {

// Before BackgroundWorkerInitializeConnection: remembers the server's values.
void remember();

// Right after it: puts back every remembered setting that a database's or a
// role's setting changed (inside a transaction of its own).
void restore();

}  // namespace sessrev::worker_environment
