#include "key_routing.hpp"

#include "citus_placement.hpp"
#include "session_lookup.hpp"
#include "table_guard.hpp"

extern "C" {
#include "postgres.h"

#include "catalog/pg_operator_d.h"
#include "catalog/pg_type_d.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/pathnodes.h"
#include "optimizer/optimizer.h"
#include "optimizer/planner.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteManip.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"
}

#include <initializer_list>

namespace sessrev::key_routing {
namespace {

planner_hook_type previous_hook = nullptr;

// One of the co-located tables: its user_id column and the key's.
struct Keyed {
    Oid relid;
    AttrNumber user_id;
    AttrNumber user_key;
};

// The query being walked and those it is in (outermost first).
struct Levels {
    const Query *queries[32];
    int n;
};

struct Keys {
    Oid type;   // the user key's
    Oid equal;  // its = operator
    ParamListInfo params;  // the statement's, as the planner has them
    Keyed tables[4];
    int n;
};

// The co-located tables when sessrev's are distributed by a user key; false
// otherwise. Never refuses: a statement the layout refuses is refused by
// the executor hook (table_guard.hpp).
bool keys_now(Keys *k) {
    lookup::Layout l;
    if (!lookup::serving()) {
        if (!lookup::find_tables(&l) || l.placement.where != placement::Where::distributed) return false;
    }
    l = lookup::layout_of_tables();
    if (l.placement.where != placement::Where::distributed || !OidIsValid(l.user_key_type)) return false;
    k->type = l.user_key_type;
    k->equal = lookup_type_cache(k->type, TYPECACHE_EQ_OPR)->eq_opr;
    if (!OidIsValid(k->equal)) return false;
    const char *key = get_attname(l.sessions, l.user_key, true);
    if (key == nullptr) return false;
    k->n = 0;
    for (const Oid relid : {l.sessions, l.pending, l.retired_tokens, l.user_cutoffs}) {
        const AttrNumber user_id = get_attnum(relid, "user_id");
        const AttrNumber user_key = get_attnum(relid, key);
        if (user_id != InvalidAttrNumber && user_key != InvalidAttrNumber)
            k->tables[k->n++] = Keyed{relid, user_id, user_key};
    }
    return true;
}

// The keyed table whose user_id node is (a Var of query q or of the query
// levels it is in, innermost first), or null.
const Keyed *user_id_of(const Keys &k, const Levels &levels, const Node *node) {
    if (node == nullptr || !IsA(node, Var)) return nullptr;
    const Var *var = reinterpret_cast<const Var *>(node);
    // A column named through a join's alias: its twin would be named so too,
    // by the join's column numbers, which Citus's deparser prints.
    if (static_cast<int>(var->varnosyn) != static_cast<int>(var->varno)) return nullptr;
    if (var->varlevelsup >= static_cast<Index>(levels.n)) return nullptr;
    const Query *q = levels.queries[levels.n - 1 - static_cast<int>(var->varlevelsup)];
    if (var->varno < 1 || var->varno > list_length(q->rtable)) return nullptr;
    const RangeTblEntry *rte = rt_fetch(var->varno, q->rtable);
    if (rte->rtekind != RTE_RELATION) return nullptr;
    for (int i = 0; i < k.n; i++)
        if (k.tables[i].relid == rte->relid && k.tables[i].user_id == var->varattno) return &k.tables[i];
    return nullptr;
}

// The key's column beside user_id's Var.
Var *key_var(const Keys &k, const Keyed &table, const Node *user_id) {
    Var *var = static_cast<Var *>(copyObjectImpl(user_id));
    var->varattno = table.user_key;
    var->vartype = k.type;
    var->vartypmod = -1;
    var->varcollid = InvalidOid;
    var->varattnosyn = table.user_key;
    return var;
}

// value (text) in the key's type: a constant when value is one with the
// statement's parameters (those of a custom plan, which Citus has plancache
// make), so that Citus finds the shard when it plans the statement.
Expr *as_key(const Keys &k, const Node *value) {
    CoerceViaIO *cast = makeNode(CoerceViaIO);
    cast->arg = static_cast<Expr *>(copyObjectImpl(value));
    cast->resulttype = k.type;
    cast->resultcollid = InvalidOid;
    cast->coerceformat = COERCE_EXPLICIT_CAST;
    cast->location = -1;
    PlannerGlobal glob{};
    glob.type = T_PlannerGlobal;
    glob.boundParams = k.params;
    PlannerInfo root{};
    root.type = T_PlannerInfo;
    root.glob = &glob;
    return reinterpret_cast<Expr *>(eval_const_expressions(&root, reinterpret_cast<Node *>(cast)));
}

Expr *key_equals(const Keys &k, Expr *left, Expr *right) {
    OpExpr *op = reinterpret_cast<OpExpr *>(make_opclause(k.equal, BOOLOID, false, left, right, InvalidOid, InvalidOid));
    set_opfuncid(op);
    return reinterpret_cast<Expr *>(op);
}

// Whether node names a column (of any query level) or holds a query: a
// value cast to the key is one of the statement's constants or parameters,
// which no other row's value can make fail.
bool names_a_column(Node *node, void *context) {
    if (node == nullptr) return false;
    if (IsA(node, Var) || IsA(node, Query)) return true;
    return expression_tree_walker(node, (bool (*)())(void *)names_a_column, context);
}

// The key's twin of one conjunct "user_id = value", or null. value names no
// column and is not volatile: cast to the key, it says nothing new but
// where the row is. Two keyed tables' user_ids (this level's and this or
// an outer level's): their keys.
Expr *twin(const Keys &k, const Levels &levels, const Node *conjunct) {
    if (conjunct == nullptr || !IsA(conjunct, OpExpr)) return nullptr;
    const OpExpr *op = reinterpret_cast<const OpExpr *>(conjunct);
    if (op->opno != TextEqualOperator || list_length(op->args) != 2) return nullptr;
    // Under a nondeterministic collation another text than the key's can be equal.
    if (OidIsValid(op->inputcollid) && !get_collation_isdeterministic(op->inputcollid)) return nullptr;
    const Node *left = static_cast<const Node *>(linitial(op->args));
    const Node *right = static_cast<const Node *>(lsecond(op->args));
    const Keyed *l = user_id_of(k, levels, left), *r = user_id_of(k, levels, right);
    // This level's column, against the same or an outer level's.
    if (l != nullptr && r != nullptr && reinterpret_cast<const Var *>(left)->varlevelsup != 0 &&
        reinterpret_cast<const Var *>(right)->varlevelsup != 0)
        return nullptr;
    if (l != nullptr && r != nullptr)
        return key_equals(k, reinterpret_cast<Expr *>(key_var(k, *l, left)),
                          reinterpret_cast<Expr *>(key_var(k, *r, right)));
    const bool left_here = l != nullptr && reinterpret_cast<const Var *>(left)->varlevelsup == 0;
    const bool right_here = r != nullptr && reinterpret_cast<const Var *>(right)->varlevelsup == 0;
    if (!left_here && !right_here) return nullptr;
    const Keyed *table = left_here ? l : r;
    const Node *column = left_here ? left : right;
    const Node *value = left_here ? right : left;
    if (names_a_column(const_cast<Node *>(value), nullptr) || contain_volatile_functions(const_cast<Node *>(value)))
        return nullptr;
    return key_equals(k, reinterpret_cast<Expr *>(key_var(k, *table, column)), as_key(k, value));
}

// quals with the twins of its conjuncts added to them.
Node *with_twins(const Keys &k, const Levels &levels, Node *quals) {
    if (quals == nullptr) return nullptr;
    List *conjuncts = is_andclause(quals) ? reinterpret_cast<BoolExpr *>(quals)->args : list_make1(quals);
    List *twins = NIL;
    const ListCell *cell;
    foreach (cell, conjuncts)
        if (Expr *t = twin(k, levels, static_cast<const Node *>(lfirst(cell)))) twins = lappend(twins, t);
    if (twins == NIL) return quals;
    if (is_andclause(quals)) {
        BoolExpr *conjunction = reinterpret_cast<BoolExpr *>(quals);
        conjunction->args = list_concat(conjunction->args, twins);
        return quals;
    }
    return reinterpret_cast<Node *>(make_andclause(lcons(quals, twins)));
}

// The ON clauses of the joins in node (a join tree), twinned.
void twin_joins(const Keys &k, const Levels &levels, Node *node) {
    if (node == nullptr) return;
    if (IsA(node, FromExpr)) {
        FromExpr *from = reinterpret_cast<FromExpr *>(node);
        const ListCell *cell;
        foreach (cell, from->fromlist) twin_joins(k, levels, static_cast<Node *>(lfirst(cell)));
        from->quals = with_twins(k, levels, from->quals);
    } else if (IsA(node, JoinExpr)) {
        JoinExpr *join = reinterpret_cast<JoinExpr *>(node);
        twin_joins(k, levels, join->larg);
        twin_joins(k, levels, join->rarg);
        join->quals = with_twins(k, levels, join->quals);
    }
}

// Whether value, copied, would be evaluated twice to another value, or
// holds a query.
bool not_copyable(const Node *value) {
    return contain_volatile_functions(const_cast<Node *>(value)) || checkExprHasSubLink(const_cast<Node *>(value));
}

// The key of the rows an INSERT of q writes, given their user_id (expr);
// null when it cannot be copied (Citus then refuses the INSERT, which names
// no key). Rows of a VALUES list each get their key in a column of their
// own, which Citus reads row by row, as it reads user_id.
Expr *key_of_rows(const Keys &k, Query *q, Expr *user_id, char *name) {
    const Node *expr = reinterpret_cast<const Node *>(user_id);
    if (IsA(expr, Var) && reinterpret_cast<const Var *>(expr)->varlevelsup == 0) {
        const Var *column = reinterpret_cast<const Var *>(expr);
        RangeTblEntry *values = rt_fetch(column->varno, q->rtable);
        if (values->rtekind == RTE_VALUES) {
            const ListCell *cell;
            foreach (cell, values->values_lists)
                if (not_copyable(static_cast<const Node *>(list_nth(static_cast<List *>(lfirst(cell)),
                                                                    column->varattno - 1))))
                    return nullptr;
            ListCell *row;
            foreach (row, values->values_lists) {
                List *entries = static_cast<List *>(lfirst(row));
                lfirst(row) = lappend(entries, as_key(k, static_cast<const Node *>(list_nth(entries, column->varattno - 1))));
            }
            values->coltypes = lappend_oid(values->coltypes, k.type);
            values->coltypmods = lappend_int(values->coltypmods, -1);
            values->colcollations = lappend_oid(values->colcollations, InvalidOid);
            values->eref->colnames = lappend(values->eref->colnames, makeString(name));
            return reinterpret_cast<Expr *>(
                makeVar(column->varno, static_cast<AttrNumber>(list_length(values->coltypes)), k.type, -1, InvalidOid, 0));
        }
    }
    if (not_copyable(expr)) return nullptr;
    return as_key(k, expr);
}

// An INSERT into a keyed table: the key from user_id, and the key in an
// ON CONFLICT that names user_id.
void key_insert(const Keys &k, Query *q) {
    if (q->commandType != CMD_INSERT || q->resultRelation <= 0) return;
    const RangeTblEntry *rte = rt_fetch(q->resultRelation, q->rtable);
    const Keyed *table = nullptr;
    for (int i = 0; i < k.n; i++)
        if (k.tables[i].relid == rte->relid) table = &k.tables[i];
    if (table == nullptr) return;
    const TargetEntry *user_id = nullptr;
    const ListCell *cell;
    foreach (cell, q->targetList) {
        const TargetEntry *entry = static_cast<const TargetEntry *>(lfirst(cell));
        if (entry->resjunk) continue;
        if (entry->resno == table->user_key) return;  // named by the statement
        if (entry->resno == table->user_id) user_id = entry;
    }
    if (user_id == nullptr) return;  // refused by the NOT NULL
    Expr *value = key_of_rows(k, q, user_id->expr, get_attname(table->relid, table->user_key, false));
    if (value == nullptr) return;
    // The planner wants an INSERT's entries in column order.
    TargetEntry *key = makeTargetEntry(value, table->user_key, get_attname(table->relid, table->user_key, false),
                                       false);
    int position = 0;
    foreach (cell, q->targetList) {
        const TargetEntry *entry = static_cast<const TargetEntry *>(lfirst(cell));
        if (!entry->resjunk && entry->resno > table->user_key) break;
        position++;
    }
    q->targetList = list_insert_nth(q->targetList, position, key);
    if (q->onConflict == nullptr) return;
    foreach (cell, q->onConflict->arbiterElems) {
        const InferenceElem *element = static_cast<const InferenceElem *>(lfirst(cell));
        const Node *expr = reinterpret_cast<const Node *>(element->expr);
        if (expr == nullptr || !IsA(expr, Var) || reinterpret_cast<const Var *>(expr)->varattno != table->user_id)
            continue;
        InferenceElem *key_element = makeNode(InferenceElem);
        key_element->expr = reinterpret_cast<Node *>(key_var(k, *table, expr));
        key_element->infercollid = InvalidOid;
        key_element->inferopclass = InvalidOid;
        q->onConflict->arbiterElems = lappend(q->onConflict->arbiterElems, key_element);
        return;
    }
}

bool names_keyed_table(const Keys &k, const Query *q) {
    const ListCell *cell;
    foreach (cell, q->rtable) {
        const RangeTblEntry *rte = static_cast<const RangeTblEntry *>(lfirst(cell));
        if (rte->rtekind != RTE_RELATION) continue;
        for (int i = 0; i < k.n; i++)
            if (k.tables[i].relid == rte->relid) return true;
    }
    return false;
}

struct Walk {
    Keys keys;
    bool known;  // keys read (only once a level names one of sessrev's tables)
    bool keyed;  // and sessrev's tables are distributed by a user key
    Levels levels;
};

bool add_twins(Node *node, void *context) {
    if (node == nullptr) return false;
    Walk *walk = static_cast<Walk *>(context);
    if (IsA(node, Query)) {
        Query *q = reinterpret_cast<Query *>(node);
        if (walk->levels.n == lengthof(walk->levels.queries)) return false;  // no twins that deep
        walk->levels.queries[walk->levels.n++] = q;
        if (!walk->known && table_guard::names_sessrev_relation(q->rtable)) {
            walk->keyed = keys_now(&walk->keys);
            walk->known = true;
        }
        if (walk->keyed && names_keyed_table(walk->keys, q)) {
            key_insert(walk->keys, q);
            twin_joins(walk->keys, walk->levels, reinterpret_cast<Node *>(q->jointree));
        }
        const bool done = query_tree_walker(q, (bool (*)())(void *)add_twins, context, 0);
        walk->levels.n--;
        return done;
    }
    return expression_tree_walker(node, (bool (*)())(void *)add_twins, context);
}

PlannedStmt *on_planner(Query *parse, const char *query_string, int options, ParamListInfo params) {
    if (!placement::distributing()) {
        Walk walk{};
        walk.keys.params = params;
        (void)add_twins(reinterpret_cast<Node *>(parse), &walk);
    }
    if (previous_hook) return previous_hook(parse, query_string, options, params);
    return standard_planner(parse, query_string, options, params);
}

}  // namespace

void register_hooks() {
    previous_hook = planner_hook;
    planner_hook = on_planner;
}

}  // namespace sessrev::key_routing
