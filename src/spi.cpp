#include "spi.hpp"

namespace sessrev::spi {

int64 single_int64(const char *query, int nargs, Oid *types, Datum *values, const char *nulls) {
    int rc = SPI_execute_with_args(query, nargs, types, values, nulls, false, 0);
    if (rc < 0 || SPI_processed != 1 || SPI_tuptable == nullptr)
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
                        errmsg("sessrev: internal query returned %lu rows (%s)",
                               static_cast<unsigned long>(SPI_processed), SPI_result_code_string(rc))));
    bool isnull;
    Datum value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
    return isnull ? 0 : DatumGetInt64(value);
}

}  // namespace sessrev::spi
