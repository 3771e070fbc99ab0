// sessrev.* settings (GUCs), defined once in define_settings().
#pragma once

namespace sessrev::settings {

// All durations are in seconds, as the GUCs store them. session_ttl, max_ttl,
// touch_interval, max_sessions_per_user and reuse_interval are read by the SQL
// functions (current_setting); the rest by the C++ code.
extern int session_ttl;
extern int max_ttl;
extern int touch_interval;
extern int idle_timeout;
extern int cleanup_batch_size;
extern int audit_retention;
extern int cache_size;  // entries; defined only when preloaded
extern int session_cache_size;  // validate_session's entries; likewise
extern int jwt_cache_databases;  // databases with is_jwt_revoked's filters; likewise
extern bool standby_cache;  // standby_records.hpp; likewise
extern int cleanup_interval;
extern int cleanup_delay;  // milliseconds between the worker's cleanup batches
extern int max_sessions_per_user;
extern int reuse_interval;
extern int max_rotations_per_minute;  // read by rotate_session_token
extern int max_retired_tokens;        // likewise
extern int max_self_revocations_per_minute;  // read by revoke_my_other_sessions
extern char *database;  // the worker's database; defined only when preloaded
extern int max_forwarding_connections;  // check_forwarding.hpp
extern char *primary_conninfo;  // touch_forwarding.hpp; likewise

// Defines every sessrev.* GUC; cache_size only means something when preloading.
void define_settings();

}  // namespace sessrev::settings
