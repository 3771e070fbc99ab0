// The library's entry: module magic and _PG_init.
extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"

PG_MODULE_MAGIC;

void _PG_init(void);
}

#include "cache.hpp"
#include "cache_invalidation.hpp"
#include "check_forwarding.hpp"
#include "citus_placement.hpp"
#include "current_session.hpp"
#include "session_cache.hpp"
#include "session_lookup.hpp"
#include "key_routing.hpp"
#include "table_guard.hpp"
#include "standby_records.hpp"
#include "touch_queue.hpp"
#include "reuse_reports.hpp"
#include "settings.hpp"
#include "trigger_arming.hpp"
#include "validate_session.hpp"
#include "worker.hpp"

namespace {

shmem_request_hook_type prev_shmem_request = nullptr;

void request_shmem() {
    if (prev_shmem_request) prev_shmem_request();
    sessrev::cache::request_shmem();
    sessrev::session_cache::request_shmem();
    sessrev::touch_queue::request_shmem();
    sessrev::reuse_reports::request_shmem();
    sessrev::worker::request_shmem();
    sessrev::check_forwarding::request_shmem();
}

}  // namespace

extern "C" void _PG_init(void) {
    sessrev::settings::define_settings();
    sessrev::lookup::register_callbacks();
    sessrev::invalidation::register_callbacks();
    sessrev::current_session::register_callbacks();
    sessrev::arming::register_callbacks();
    sessrev::validation::register_callbacks();
    sessrev::placement::register_hooks();
    sessrev::table_guard::register_hooks();
    sessrev::key_routing::register_hooks();
    // The cache lives in shared memory, which only preloading can reserve.
    if (!process_shared_preload_libraries_in_progress) return;
    prev_shmem_request = shmem_request_hook;
    shmem_request_hook = request_shmem;
    sessrev::cache::startup_shmem();
    sessrev::session_cache::startup_shmem();
    sessrev::touch_queue::startup_shmem();
    sessrev::reuse_reports::startup_shmem();
    sessrev::worker::startup_shmem();
    sessrev::check_forwarding::startup_shmem();
    sessrev::standby_records::register_rmgr();
    // pg_upgrade's server must run nothing of its own.
    if (!IsBinaryUpgrade) sessrev::worker::register_worker();
}
