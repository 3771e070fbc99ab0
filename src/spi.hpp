// Small helpers for running sessrev's own SQL through SPI. PostgreSQL-style
// code: call them only where no C++ object with a destructor is alive.
#pragma once

extern "C" {
#include "postgres.h"

#include "executor/spi.h"
}

namespace sessrev::spi {

// Runs query with args and returns the first column of its only row as int64
// (0 when that value is NULL). Must be called between SPI_connect and SPI_finish.
int64 single_int64(const char *query, int nargs, Oid *types, Datum *values, const char *nulls);

}  // namespace sessrev::spi
