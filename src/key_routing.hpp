// Statements on sessrev's tables distributed by the user id as a bigint or a
// uuid (sessrev.distribute(user_id_type => ...)).
//
// Citus co-locates only tables distributed by columns of one type: to sit
// with an application's users table distributed by a bigint or uuid id,
// sessrev's co-located tables are distributed by user_id_bigint or
// user_id_uuid, the key: user_id in that type (a CHECK keeps user_id the
// key's own text). Citus routes a statement to a user's shard by its
// distribution column, which sessrev's statements name as user_id: before
// Citus plans a statement, the planner hook gives each condition "user_id =
// <value>" on one of those tables its twin "<key> = <value>::<key type>",
// each "a.user_id = b.user_id" between two of them "a.<key> = b.<key>", each
// row an INSERT writes its key from its user_id, and each ON CONFLICT (...,
// user_id) the key too (the tables' unique keys include it). One place, so
// that every statement, sessrev's and anyone's, routes alike.
#pragma once

namespace sessrev::key_routing {

// From _PG_init: the planner hook, in every backend that loads sessrev.
void register_hooks();

}  // namespace sessrev::key_routing
