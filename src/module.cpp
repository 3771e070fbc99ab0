// The library's entry: module magic and _PG_init.
extern "C" {
#include "postgres.h"

#include "fmgr.h"

PG_MODULE_MAGIC;

void _PG_init(void);
}

#include "settings.hpp"

extern "C" void _PG_init(void) { sessrev::settings::define_settings(); }
