#include "worker_environment.hpp"

#include "compat.hpp"

extern "C" {
#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "catalog/pg_authid_d.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/memutils.h"
}

#include <cstring>

namespace sessrev::worker_environment {
namespace {

struct Saved {
    const char *name;
    const char *value;
};

Saved *saved = nullptr;
int saved_count = 0;

bool from_database_or_role(GucSource source) {
    return source == PGC_S_DATABASE || source == PGC_S_USER || source == PGC_S_DATABASE_USER;
}

}  // namespace

void remember() {
    // plpgsql's settings (plpgsql.extra_errors would turn the worker's
    // functions' warnings into errors) exist only once it is loaded.
    load_file("plpgsql", false);
    int count;
    config_generic **variables = compat::guc_variables(&count);
    MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
    saved = static_cast<Saved *>(palloc(count * sizeof(Saved)));
    saved_count = 0;
    for (int i = 0; i < count; i++) {
        const config_generic *v = variables[i];
        // session_authorization and role are set apart: their values name roles.
        if (v->context != PGC_USERSET || (v->flags & GUC_CUSTOM_PLACEHOLDER) ||
            strcmp(v->name, "session_authorization") == 0 || strcmp(v->name, "role") == 0)
            continue;
        const char *value = GetConfigOption(v->name, true, false);
        if (value == nullptr) continue;
        saved[saved_count++] = {pstrdup(v->name), pstrdup(value)};
    }
    MemoryContextSwitchTo(old);
}

void restore() {
    StartTransactionCommand();
    int count;
    config_generic **variables = compat::guc_variables(&count);
    for (int i = 0; i < count; i++) {
        const config_generic *v = variables[i];
        if (!from_database_or_role(v->source)) continue;
        if (strcmp(v->name, "role") == 0) {
            SetConfigOption("role", "none", PGC_SUSET, PGC_S_OVERRIDE);
            continue;
        }
        if (strcmp(v->name, "session_authorization") == 0) {
            // Back to the user it connected as: the bootstrap superuser.
            SetConfigOption("session_authorization", GetUserNameFromId(BOOTSTRAP_SUPERUSERID, false),
                            PGC_SUSET, PGC_S_OVERRIDE);
            continue;
        }
        for (int j = 0; j < saved_count; j++)
            if (strcmp(saved[j].name, v->name) == 0) {
                SetConfigOption(saved[j].name, saved[j].value, PGC_SUSET, PGC_S_OVERRIDE);
                break;
            }
    }
    CommitTransactionCommand();
}

}  // namespace sessrev::worker_environment
