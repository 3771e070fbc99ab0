#include "settings.hpp"

extern "C" {
#include "postgres.h"

#include "miscadmin.h"
#include "utils/guc.h"
}

#include <climits>

namespace sessrev::settings {

namespace {
constexpr int minute = 60;
constexpr int day = 24 * 60 * minute;
constexpr int max_cache_size = 64 * 1024 * 1024;
constexpr int max_session_cache_size = 16 * 1024 * 1024;
constexpr int max_jwt_cache_databases = 64;
}  // namespace

int session_ttl = 7 * day;
int max_ttl = 365 * day;
int touch_interval = minute;
int idle_timeout = 0;
int cleanup_batch_size = 10000;
int audit_retention = 90 * day;
int cache_size = 1024 * 1024;
int session_cache_size = 128 * 1024;
bool standby_cache = false;
int jwt_cache_databases = 4;
int cleanup_interval = 10 * minute;
int cleanup_delay = 100;
int max_sessions_per_user = 0;
int reuse_interval = 10;
int max_rotations_per_minute = 10;
int max_retired_tokens = 10;
int max_self_revocations_per_minute = 10;
char *database = nullptr;
char *primary_conninfo = nullptr;
int max_forwarding_connections = 32;

void define_settings() {
    DefineCustomIntVariable("sessrev.session_ttl",
                            "Lifetime of a new session when create_session gets no ttl.",
                            nullptr, &session_ttl, 7 * day, 1, INT_MAX, PGC_USERSET,
                            GUC_UNIT_S, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("sessrev.max_ttl",
                            "Longest lifetime a session may be given.",
                            nullptr, &max_ttl, 365 * day, 1, INT_MAX, PGC_SUSET, GUC_UNIT_S,
                            nullptr, nullptr, nullptr);
    DefineCustomIntVariable("sessrev.touch_interval",
                            "validate_session moves last_active_at forward at most this often.",
                            nullptr, &touch_interval, minute, 0, INT_MAX, PGC_USERSET, GUC_UNIT_S,
                            nullptr, nullptr, nullptr);
    DefineCustomIntVariable("sessrev.idle_timeout",
                            "A session idle longer than this is no longer valid; 0 turns it off.",
                            nullptr, &idle_timeout, 0, 0, INT_MAX, PGC_SUSET, GUC_UNIT_S, nullptr,
                            nullptr, nullptr);
    DefineCustomIntVariable("sessrev.cleanup_batch_size",
                            "Rows deleted per statement by cleanup_expired_sessions.", nullptr,
                            &cleanup_batch_size, 10000, 1, 1000000, PGC_SUSET, 0, nullptr,
                            nullptr, nullptr);
    DefineCustomIntVariable("sessrev.audit_retention",
                            "Audit rows older than this are deleted by cleanup; 0 keeps them all.",
                            nullptr, &audit_retention, 90 * day, 0, INT_MAX, PGC_SUSET, GUC_UNIT_S,
                            nullptr, nullptr, nullptr);
    DefineCustomIntVariable("sessrev.cleanup_interval",
                            "How often the background worker cleans up; 0 turns it off.", nullptr,
                            &cleanup_interval, 10 * minute, 0, INT_MAX / 1000, PGC_SIGHUP,
                            GUC_UNIT_S, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("sessrev.cleanup_delay",
                            "Pause of the background worker between cleanup batches; 0 runs "
                            "them back to back.",
                            "Like autovacuum_vacuum_cost_delay: a longer pause leaves more of the "
                            "machine to requests while a large cleanup runs.",
                            &cleanup_delay, 100, 0, 10000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr,
                            nullptr);
    DefineCustomIntVariable("sessrev.max_sessions_per_user",
                            "Live sessions a user may have; a new one revokes the least recently "
                            "active beyond it. 0 means unlimited.",
                            nullptr, &max_sessions_per_user, 0, 0, 100000, PGC_SUSET, 0, nullptr,
                            nullptr, nullptr);
    DefineCustomIntVariable("sessrev.reuse_interval",
                            "How long a rotated-out token still validates (requests in flight); "
                            "after it, presenting it revokes the session.",
                            nullptr, &reuse_interval, 10, 0, 3600, PGC_SUSET, GUC_UNIT_S, nullptr,
                            nullptr, nullptr);
    DefineCustomIntVariable("sessrev.max_rotations_per_minute",
                            "Token rotations one session may make in a minute; past it "
                            "rotate_token fails (54000).",
                            nullptr, &max_rotations_per_minute, 10, 1, 10000, PGC_SUSET, 0, nullptr,
                            nullptr, nullptr);
    DefineCustomIntVariable("sessrev.max_retired_tokens",
                            "Rotated-out tokens kept per session for reuse detection; older ones "
                            "are forgotten (they no longer validate either).",
                            nullptr, &max_retired_tokens, 10, 1, 1000, PGC_SUSET, 0, nullptr,
                            nullptr, nullptr);
    DefineCustomIntVariable("sessrev.max_self_revocations_per_minute",
                            "Calls of revoke_my_other_sessions one user may make in a minute; past "
                            "it they fail (54000).",
                            nullptr, &max_self_revocations_per_minute, 10, 1, 10000, PGC_SUSET, 0,
                            nullptr, nullptr, nullptr);
    // Postmaster-only settings can be defined only while preloading.
    if (process_shared_preload_libraries_in_progress) {
        DefineCustomIntVariable("sessrev.cache_size",
                                "Entries in the shared-memory cache of live sessions; 0 disables it.",
                                "32 bytes per entry.", &cache_size, 1024 * 1024, INT_MIN, INT_MAX,
                                PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
        // Checked here rather than by the GUC's bounds, which only warn and
        // fall back to the default: a wrong size stops the server with a reason.
        if (cache_size < 0 || cache_size > max_cache_size)
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("sessrev.cache_size must be between 0 and %d, got %d",
                                   max_cache_size, cache_size)));
        DefineCustomIntVariable("sessrev.session_cache_size",
                                "Entries in the shared-memory cache behind validate_session; 0 "
                                "disables it.",
                                "256 bytes per entry; a session with at most 72 bytes of user id and metadata takes 128.", &session_cache_size, 128 * 1024, INT_MIN,
                                INT_MAX, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
        if (session_cache_size < 0 || session_cache_size > max_session_cache_size)
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("sessrev.session_cache_size must be between 0 and %d, got %d",
                                   max_session_cache_size, session_cache_size)));
        DefineCustomIntVariable("sessrev.jwt_cache_databases",
                                "Databases whose is_jwt_revoked is answered from shared memory; "
                                "others read their tables.",
                                "4 MiB per database.", &jwt_cache_databases, 4, INT_MIN, INT_MAX,
                                PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
        if (jwt_cache_databases < 1 || jwt_cache_databases > max_jwt_cache_databases)
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("sessrev.jwt_cache_databases must be between 1 and %d, got %d",
                                   max_jwt_cache_databases, jwt_cache_databases)));
        DefineCustomBoolVariable("sessrev.standby_cache",
                                 "On a primary, write the WAL records that keep hot standbys' "
                                 "caches coherent; on a hot standby, serve checks from the cache "
                                 "while its primary writes them.",
                                 "Every server that replays this WAL must load sessrev.",
                                 &standby_cache, false, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
        DefineCustomStringVariable("sessrev.primary_conninfo",
                                   "On a hot standby, the connection to the primary over which the "
                                   "worker sends the touches made here; empty: they are skipped.",
                                   "Its role needs EXECUTE on sessrev.forward_touch; dbname must be "
                                   "sessrev.database's.",
                                   &primary_conninfo, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY, nullptr, nullptr,
                                   nullptr);
        DefineCustomIntVariable("sessrev.max_forwarding_connections",
                                "On a Citus worker, how many backends may hold a connection to the "
                                "coordinator for their checks at once; past it a check fails (53300).",
                                "Each backend keeps its connection until it exits.",
                                &max_forwarding_connections, 32, 0, 10000, PGC_SIGHUP, 0, nullptr,
                                nullptr, nullptr);
        DefineCustomStringVariable("sessrev.database",
                                   "Database in which the background worker cleans up.", nullptr,
                                   &database, "postgres", PGC_POSTMASTER, 0, nullptr, nullptr,
                                   nullptr);
    }
    MarkGUCPrefixReserved("sessrev");
}

}  // namespace sessrev::settings
