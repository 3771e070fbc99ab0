#include "standby_records.hpp"

#include "in_doubt.hpp"
#include "jwt_cache.hpp"
#include "settings.hpp"

extern "C" {
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xloginsert.h"
#include "access/xlogreader.h"
#include "catalog/pg_control.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/timestamp.h"
}

#include <cstring>

namespace sessrev::standby_records {
namespace {

constexpr uint8 hello = 0x00;
constexpr uint8 changes = 0x10;
constexpr uint8 disarmed = 0x20;
constexpr uint8 rearmed = 0x30;

constexpr uint8 flag_all = 1;
constexpr uint8 flag_global = 2;
constexpr uint8 flag_all_filters = 4;  // more filter additions than listed

constexpr int64 announce_every_ms = 5000;

// What the WAL holds; padding is zeroed so that records are deterministic.
struct ChangesHeader {
    TransactionId xid;
    Oid database;        // of the filter additions
    uint32 count;        // keys, then
    uint32 filter_count; // filter additions
    uint8 flags;
    uint8 padding[3];
};
struct WireKey {
    Oid database;
    Oid relation;
    uint8 kind;
    unsigned char bytes[32];
    uint8 padding[3];
};
struct WireAddition {
    uint8 filter;  // 0: jti, 1: user
    unsigned char hash[32];
};
struct Arming {
    TransactionId xid;
    Oid database;
};

TimestampTz last_announced = 0;
void (*replay_xlog_record)(XLogReaderState *) = nullptr;

void redo_changes(const char *data, std::size_t length) {
    ChangesHeader h;
    if (length < sizeof h) elog(PANIC, "sessrev: short changes record");
    memcpy(&h, data, sizeof h);
    const std::size_t keys_end = sizeof h + static_cast<std::size_t>(h.count) * sizeof(WireKey);
    if (length != keys_end + static_cast<std::size_t>(h.filter_count) * sizeof(WireAddition))
        elog(PANIC, "sessrev: changes record of %zu bytes for %u keys and %u filter additions", length,
             h.count, h.filter_count);
    uint64 bits[cache::buckets / 64] = {};
    for (uint32 i = 0; i < h.count; i++) {
        WireKey w;
        memcpy(&w, data + sizeof h + i * sizeof w, sizeof w);
        cache::Key key{w.database, w.relation, static_cast<cache::Kind>(w.kind), {}};
        memcpy(key.bytes, w.bytes, sizeof key.bytes);
        const uint32 bucket = cache::bucket_of(key);
        bits[bucket / 64] |= UINT64CONST(1) << (bucket % 64);
    }
    const bool all_filters = (h.flags & flag_all_filters) != 0;
    // The doubt first: a standby's build of the filters that starts after it
    // gives up, and one that started before sees the additions counted.
    in_doubt::replayed(h.xid, bits, (h.flags & flag_all) != 0, (h.flags & flag_global) != 0,
                       h.filter_count > 0 || all_filters, InvalidOid);
    for (uint32 i = 0; i < h.filter_count; i++) {
        WireAddition w;
        memcpy(&w, data + keys_end + i * sizeof w, sizeof w);
        token::Hash hash;
        memcpy(hash.data(), w.hash, hash.size());
        jwt_cache::add_replayed(h.database, w.filter == 0 ? jwt_cache::Filter::jti : jwt_cache::Filter::user, hash);
    }
    if (all_filters) jwt_cache::forget_build_of(h.database);
}

void redo_arming(const char *data, std::size_t length, bool off) {
    Arming a;
    if (length != sizeof a) elog(PANIC, "sessrev: arming record of %zu bytes", length);
    memcpy(&a, data, sizeof a);
    // Before the disarming can be visible: nothing done meanwhile without the
    // triggers (so without records) can meet a cached answer.
    if (off && !cache::suspend_if_room(a.database)) {
        ereport(WARNING, (errmsg("sessrev: too many databases with disabled sessrev triggers; "
                                 "the cache serves nothing until this server restarts")));
        in_doubt::stop_serving();
    }
    const uint64 none[cache::buckets / 64] = {};
    in_doubt::replayed(a.xid, none, true, true, true, off ? InvalidOid : a.database);
}

void redo(XLogReaderState *record) {
    // A server that does not follow them (or has no cache) only reads past them.
    if (!settings::standby_cache || !cache::enabled()) return;
    const uint8 info = XLogRecGetInfo(record) & ~XLR_INFO_MASK;
    const char *data = XLogRecGetData(record);
    const std::size_t length = XLogRecGetDataLen(record);
    in_doubt::primary_writes_records();
    switch (info) {
        case hello:
            break;
        case changes:
            redo_changes(data, length);
            break;
        case disarmed:
        case rearmed:
            redo_arming(data, length, info == disarmed);
            break;
        default:
            elog(PANIC, "sessrev: unknown record type %u", info);
    }
}

const char *identify(uint8 info) {
    switch (info & ~XLR_INFO_MASK) {
        case hello: return "HELLO";
        case changes: return "CHANGES";
        case disarmed: return "DISARMED";
        case rearmed: return "REARMED";
        default: return nullptr;
    }
}

void describe(StringInfo buf, XLogReaderState *record) {
    const uint8 info = XLogRecGetInfo(record) & ~XLR_INFO_MASK;
    const char *data = XLogRecGetData(record);
    const std::size_t length = XLogRecGetDataLen(record);
    if (info == changes && length >= sizeof(ChangesHeader)) {
        ChangesHeader h;
        memcpy(&h, data, sizeof h);
        appendStringInfo(buf, "xid %u; %u keys%s%s; database %u: %u filter additions%s", h.xid, h.count,
                         (h.flags & flag_all) ? "; all" : "", (h.flags & flag_global) ? "; global" : "",
                         h.database, h.filter_count, (h.flags & flag_all_filters) ? "; all filters" : "");
    } else if ((info == disarmed || info == rearmed) && length == sizeof(Arming)) {
        Arming a;
        memcpy(&a, data, sizeof a);
        appendStringInfo(buf, "xid %u; database %u", a.xid, a.database);
    }
}

// Wraps the replay of the XLOG resource manager's records: a shutdown
// checkpoint (a primary stopped, or finished crash recovery) or an
// end-of-recovery record (a promotion) means that what follows may come from a
// primary that writes no records.
void watch_xlog_record(XLogReaderState *record) {
    const uint8 info = XLogRecGetInfo(record) & ~XLR_INFO_MASK;
    if (info == XLOG_CHECKPOINT_SHUTDOWN || info == XLOG_END_OF_RECOVERY) in_doubt::await_primary();
    replay_xlog_record(record);
}

RmgrData rmgr = {
    "sessrev",   // rm_name
    redo,        // rm_redo
    describe,    // rm_desc
    identify,    // rm_identify
    nullptr,     // rm_startup
    nullptr,     // rm_cleanup
    nullptr,     // rm_mask
    nullptr,     // rm_decode: nothing for logical decoding
};

}  // namespace

void register_rmgr() {
    RegisterCustomRmgr(rmgr_id, &rmgr);
    if (!settings::standby_cache) return;
    // The table is the one the startup process replays with (PostgreSQL 15+
    // keeps it writable for custom resource managers); this server's
    // processes inherit it from the postmaster.
    replay_xlog_record = RmgrTable[RM_XLOG_ID].rm_redo;
    RmgrTable[RM_XLOG_ID].rm_redo = watch_xlog_record;
}

bool writes() { return settings::standby_cache && cache::enabled() && !RecoveryInProgress(); }

void write_changes(TransactionId xid, const Changes &c) {
    ChangesHeader h;
    memset(&h, 0, sizeof h);
    h.xid = xid;
    h.database = MyDatabaseId;
    h.count = c.all ? 0 : static_cast<uint32>(c.key_count);
    h.filter_count = c.all_filters ? 0 : static_cast<uint32>(c.addition_count);
    h.flags = static_cast<uint8>((c.all ? flag_all : 0) | (c.global ? flag_global : 0) |
                                 (c.all_filters ? flag_all_filters : 0));
    const cache::Key *keys = c.keys;
    WireKey *wire = nullptr;
    if (h.count > 0) {
        wire = static_cast<WireKey *>(palloc0(h.count * sizeof(WireKey)));
        for (uint32 i = 0; i < h.count; i++) {
            wire[i].database = keys[i].database;
            wire[i].relation = keys[i].relation;
            wire[i].kind = static_cast<uint8>(keys[i].kind);
            memcpy(wire[i].bytes, keys[i].bytes, sizeof wire[i].bytes);
        }
    }
    WireAddition *additions = nullptr;
    if (h.filter_count > 0) {
        additions = static_cast<WireAddition *>(palloc0(h.filter_count * sizeof(WireAddition)));
        for (uint32 i = 0; i < h.filter_count; i++) {
            additions[i].filter = c.additions[i].filter == jwt_cache::Filter::jti ? 0 : 1;
            memcpy(additions[i].hash, c.additions[i].hash.data(), sizeof additions[i].hash);
        }
    }
    XLogBeginInsert();
    XLogRegisterData(reinterpret_cast<char *>(&h), sizeof h);
    if (wire != nullptr) XLogRegisterData(reinterpret_cast<char *>(wire), h.count * sizeof(WireKey));
    if (additions != nullptr)
        XLogRegisterData(reinterpret_cast<char *>(additions), h.filter_count * sizeof(WireAddition));
    XLogInsert(rmgr_id, changes);
    if (wire != nullptr) pfree(wire);
    if (additions != nullptr) pfree(additions);
}

void write_arming(TransactionId xid, Oid database, bool off) {
    Arming a{xid, database};
    XLogBeginInsert();
    XLogRegisterData(reinterpret_cast<char *>(&a), sizeof a);
    XLogInsert(rmgr_id, off ? disarmed : rearmed);
}

void announce() {
    if (!writes()) return;
    const TimestampTz now = GetCurrentTimestamp();
    if (last_announced != 0 && !TimestampDifferenceExceeds(last_announced, now, announce_every_ms)) return;
    last_announced = now;
    XLogBeginInsert();
    TimestampTz at = now;
    XLogRegisterData(reinterpret_cast<char *>(&at), sizeof at);
    // Not a reason for a checkpoint or an archive_timeout switch on an idle server.
    XLogSetRecordFlags(XLOG_MARK_UNIMPORTANT);
    // Standbys receive only flushed WAL; on an idle primary nothing else
    // would flush it.
    XLogFlush(XLogInsert(rmgr_id, hello));
}

}  // namespace sessrev::standby_records
