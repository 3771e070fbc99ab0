# sessrev: PGXS build of a C++17 extension.
EXTENSION  = sessrev
MODULE_big = sessrev
# Published install scripts and every upgrade script are in git; the script of
# the newest release is built from the last full one plus the upgrades since, so
# that a fresh install and an upgrade run the very same SQL.
DATA       = sql/sessrev--1.0.sql $(filter-out $(DATA_built),$(wildcard sql/sessrev--*--*.sql))
DATA_built = sql/sessrev--1.9.sql sql/sessrev--1.0--1.5.sql
OBJS       = $(patsubst %.cpp,%.o,$(wildcard src/*.cpp))

PG_CONFIG ?= pg_config

PG_CXXFLAGS = -std=c++17 -Wall -Wextra
# libpq: a standby's worker sends touches to its primary (touch_forwarding.hpp).
PG_CPPFLAGS = -I$(libpq_srcdir)
SHLIB_LINK += -lcrypto -lstdc++
SHLIB_LINK_INTERNAL = $(libpq)

# make SANITIZE=1: an AddressSanitizer + UndefinedBehaviorSanitizer build (gcc),
# stopping at the first finding, for test/run --sanitize. The server is not
# instrumented: the sanitizer runtime must be preloaded into it (LD_PRELOAD), so
# never install this build into a PostgreSQL others use. No LLVM bitcode: the
# sanitizer build is never JIT-inlined.
ifeq ($(SANITIZE),1)
sanitize_flags = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
PG_CXXFLAGS += $(sanitize_flags) -g
SHLIB_LINK  += $(sanitize_flags)
override with_llvm = no
# It only works in servers started with that runtime preloaded: install it only
# into the PostgreSQL of one of test/matrix's chroots (marked by
# /etc/sessrev-chroot), never the host's.
ifneq ($(filter install,$(MAKECMDGOALS)),)
ifeq ($(wildcard /etc/sessrev-chroot),)
$(error make SANITIZE=1 install: refused outside a chroot (see test/matrix asan))
endif
endif
endif

# pg_regress reads test/sql/*.sql and, in PostgreSQL 15, looks for expected
# output under the output directory (the top level) first: expected/ here.
REGRESS      = $(patsubst test/sql/%.sql,%,$(sort $(wildcard test/sql/*.sql)))
REGRESS_OPTS = --inputdir=test

EXTRA_CLEAN = .build-flavor results regression.diffs regression.out

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PostgreSQL's headers are not -Wextra clean; treat them as system headers so
# the warnings we see are our own.
override CPPFLAGS := $(patsubst -I$(includedir_server),-isystem $(includedir_server),$(CPPFLAGS))

# PGXS compiles LLVM bitcode with clang, which does not see PG_CXXFLAGS.
COMPILE.cxx.bc += -std=c++17

# Switching between the two builds rebuilds everything, so that a plain
# `make install` never installs objects left by a sanitizer build: .build-flavor
# names the build the objects are from, and is rewritten (newer than them) when
# that changes.
build_flavor := $(if $(filter 1,$(SANITIZE)),sanitize,plain)
ifneq ($(shell cat .build-flavor 2>/dev/null),$(build_flavor))
$(shell echo $(build_flavor) >.build-flavor)
endif

# PGXS tracks no header dependencies: rebuild everything when a header changes.
$(OBJS): $(wildcard src/*.hpp) .build-flavor

sql/sessrev--1.9.sql: sql/sessrev--1.0.sql sql/sessrev--1.0--1.1.sql sql/sessrev--1.1--1.2.sql \
                     sql/sessrev--1.2--1.3.sql sql/sessrev--1.3--1.4.sql sql/sessrev--1.4--1.5.sql \
                     sql/sessrev--1.5--1.6.sql sql/sessrev--1.6--1.7.sql sql/sessrev--1.7--1.8.sql \
                     sql/sessrev--1.8--1.9.sql
	cat $^ > $@

# The update from 1.0 in one step, which PostgreSQL prefers to the five (1.5
# then goes on to later releases by their scripts): the
# same scripts, except that 1.1's re-tracking of tables tracked under 1.0
# skips, with a WARNING naming it, any object it cannot process (a view that
# another role put a 1.0 trigger on), instead of failing the whole update and
# leaving the database without 1.1's security fixes. Published scripts stay
# as they were released.
sql/sessrev--1.0--1.5.sql: sql/sessrev--1.0--1.1.sql sql/sessrev--1.1--1.2.sql sql/sessrev--1.2--1.3.sql \
                          sql/sessrev--1.3--1.4.sql sql/sessrev--1.4--1.5.sql
	sed 's/EXCEPTION WHEN undefined_column OR feature_not_supported THEN/EXCEPTION WHEN OTHERS THEN/' $^ > $@
	grep -q 'EXCEPTION WHEN OTHERS THEN' $@


# The PGXN release zip of the committed tree, named by META.json's version.
DIST_VERSION = $(shell sed -n 's/^   "version": "\(.*\)",$$/\1/p' META.json)
dist:
	git archive --format zip --prefix=sessrev-$(DIST_VERSION)/ -o sessrev-$(DIST_VERSION).zip HEAD
.PHONY: dist
