# sessrev: PGXS build of a C++17 extension.
EXTENSION  = sessrev
MODULE_big = sessrev
# Published install scripts and every upgrade script are in git; the script of
# the newest release is built from the last full one plus the upgrades since, so
# that a fresh install and an upgrade run the very same SQL.
DATA       = sql/sessrev--1.0.sql $(wildcard sql/sessrev--*--*.sql)
DATA_built = sql/sessrev--1.2.sql
OBJS       = $(patsubst %.cpp,%.o,$(wildcard src/*.cpp))

PG_CONFIG ?= pg_config

PG_CXXFLAGS = -std=c++17 -Wall -Wextra
SHLIB_LINK += -lcrypto -lstdc++

# pg_regress reads test/sql/*.sql and, in PostgreSQL 15, looks for expected
# output under the output directory (the top level) first: expected/ here.
REGRESS      = $(patsubst test/sql/%.sql,%,$(sort $(wildcard test/sql/*.sql)))
REGRESS_OPTS = --inputdir=test

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PostgreSQL's headers are not -Wextra clean; treat them as system headers so
# the warnings we see are our own.
override CPPFLAGS := $(patsubst -I$(includedir_server),-isystem $(includedir_server),$(CPPFLAGS))

# PGXS compiles LLVM bitcode with clang, which does not see PG_CXXFLAGS.
COMPILE.cxx.bc += -std=c++17

# PGXS tracks no header dependencies: rebuild everything when a header changes.
$(OBJS): $(wildcard src/*.hpp)

sql/sessrev--1.2.sql: sql/sessrev--1.0.sql sql/sessrev--1.0--1.1.sql sql/sessrev--1.1--1.2.sql
	cat $^ > $@

EXTRA_CLEAN = results regression.diffs regression.out

# The PGXN release zip of the committed tree, named by META.json's version.
DIST_VERSION = $(shell sed -n 's/^   "version": "\(.*\)",$$/\1/p' META.json)
dist:
	git archive --format zip --prefix=sessrev-$(DIST_VERSION)/ -o sessrev-$(DIST_VERSION).zip HEAD
.PHONY: dist
