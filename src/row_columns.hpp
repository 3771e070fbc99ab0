// Comparing a column of two versions of a row by its stored bytes: never with
// the type's own operators, which the table's owner may have written.
#pragma once

extern "C" {
#include "postgres.h"

#include "access/htup_details.h"
#include "utils/datum.h"
}

namespace sessrev::row_columns {

// Whether the column holds the same bytes in both rows (both NULL counts as
// the same). Two values that the type's equality would call equal may differ.
inline bool same_bytes(HeapTuple a, HeapTuple b, TupleDesc desc, AttrNumber attnum) {
    bool a_null, b_null;
    const Datum x = heap_getattr(a, attnum, desc, &a_null);
    const Datum y = heap_getattr(b, attnum, desc, &b_null);
    if (a_null || b_null) return a_null == b_null;
    const Form_pg_attribute att = TupleDescAttr(desc, attnum - 1);
    return datum_image_eq(x, y, att->attbyval, att->attlen);
}

}  // namespace sessrev::row_columns
