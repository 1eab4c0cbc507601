# Switchyard: the two commands a user types are `make demo` and `make test`.
# Everything installs what it needs first (scripts/install-deps.sh, quick when present).

PY        ?= /usr/bin/python3
JOBS      ?= 2
BUILD     ?= build
ASAN      ?= build-asan
TSAN      ?= build-tsan
FUZZBUILD ?= build-fuzz
PYTEST     = $(PY) -m pytest -p no:cacheprovider --durations=15

.PHONY: install all deps test-clients mongo-tools tds-double build build-asan build-tsan build-fuzz unit fuzz-short integration integration-asan \
        integration-tsan test demo bench soak fuzz conformance clean

all: build

deps:
	@scripts/install-deps.sh

# The real Java (JDBC), Go (database/sql) and Node.js (mongodb driver) clients of tests/clients, cached outside
# the repo by version and source hash: ~40 s the first time on a machine, ~0.3 s after.
test-clients: deps
	@scripts/install-test-clients.sh

# FerretDB v1.24.2 (the MongoDB-protocol server the tests run) built from its Go module source, and pymongo 4
# in a venv, cached outside the repo by version: ~80 s the first time on a machine, ~0.1 s after. The pytest
# process imports pymongo 4 from that venv (scripts/sandbox.py pymongo4()); Debian's pymongo 3.11 runs in a
# /usr/bin/python3 child (sandbox.run_pymongo3) because both are the package `pymongo`.
mongo-tools: deps
	@scripts/install-ferretdb.sh

# The SQL Server double's venv (sqlglot) and the go-mssqldb client, cached the same way (~10 s once, ~0.1 s after).
tds-double: deps
	@scripts/install-tds-double.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	@cmake -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DSY_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN) -j $(JOBS)

build-tsan: deps
	@cmake -S . -B $(TSAN) -DCMAKE_BUILD_TYPE=Debug -DSY_TSAN=ON >/dev/null
	@cmake --build $(TSAN) -j $(JOBS)

build-fuzz: deps
	@cmake -S . -B $(FUZZBUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DSY_FUZZ=ON >/dev/null
	@cmake --build $(FUZZBUILD) -j $(JOBS) --target fuzz_targets

unit: build build-asan build-tsan
	@cd $(BUILD) && ctest --output-on-failure
	@cd $(ASAN) && ctest --output-on-failure
	@cd $(TSAN) && TSAN_OPTIONS="suppressions=$(CURDIR)/tsan.supp exitcode=66" ctest --output-on-failure

# Every libFuzzer target: committed corpus replayed + a fixed number of runs with a fixed seed.
fuzz-short: build-fuzz
	@scripts/fuzz.sh $(FUZZBUILD) short

# The plain and ASan passes run on $(TEST_WORKERS) pytest-xdist workers (each with its own servers and daemons):
# the tests wait on servers and timers far more than they compute (a quarter of 2 cores serially, ASan too),
# so two at a time nearly halve each pass (14 -> 8 and 13 -> 7 min). TSan's short pass stays serial.
TEST_WORKERS ?= 2
integration: build test-clients mongo-tools tds-double
	@SY_BUILD_DIR=$(CURDIR)/$(BUILD) $(PYTEST) -n $(TEST_WORKERS) tests/integration

integration-asan: build-asan test-clients mongo-tools tds-double
	@SY_BUILD_DIR=$(CURDIR)/$(ASAN) SY_SANITIZED=1 $(PYTEST) -n $(TEST_WORKERS) -m "not nosan and not soak and not conformance" tests/integration

# ThreadSanitizer: the tests marked `tsan` (pytest.ini), which run every kind of thread the daemon has.
# Each daemon writes its reports to <test tmp dir>/daemonN/tsan.<pid>; a test whose daemon wrote one fails
# at teardown and prints it. Read a report bottom-up from its SUMMARY line: the two stacks are the racing
# accesses ("Write of size 8 ... by thread T3" and "Previous read ... by main thread"), then where each
# thread was created (T3 created by main thread at module_start ...: the main thread is the event loop).
# A race in our code is fixed (mutex, atomic, or moving the access to the owning thread), never suppressed;
# tsan.supp is for uninstrumented libraries only, one reason per line.
integration-tsan: build-tsan test-clients mongo-tools
	@SY_BUILD_DIR=$(CURDIR)/$(TSAN) SY_TSAN=1 $(PYTEST) -m "tsan and not soak" tests/integration

test: unit fuzz-short integration integration-asan integration-tsan

# Installs into PREFIX (default /usr/local): switchyardd (sbin), switchyardctl (bin), man pages, a sample config
# (share/doc/switchyard) and the systemd unit (lib/systemd/system, Type=notify). DESTDIR is honoured.
PREFIX ?= /usr/local
install: build
	@cmake --install $(BUILD) --prefix $(PREFIX)

demo: build
	@scripts/demo.sh $(CURDIR)/$(BUILD)

# The benchmarks all run even when an earlier one fails; the target fails if any did.
bench: build mongo-tools tds-double
	@rc=0; \
	$(PY) bench/proxy_bench.py --build $(CURDIR)/$(BUILD) || rc=1; \
	$(PY) bench/apply_bench.py --build $(CURDIR)/$(BUILD) || rc=1; \
	$(PY) bench/switchover_bench.py --build $(CURDIR)/$(BUILD) || rc=1; \
	$(PY) bench/mongo_bench.py --build $(CURDIR)/$(BUILD) || rc=1; \
	$(PY) bench/commit_wait_bench.py --build $(CURDIR)/$(BUILD) || rc=1; \
	$(PY) bench/tds_bench.py --build $(CURDIR)/$(BUILD) || rc=1; \
	$(PY) bench/cluster_bench.py --build $(CURDIR)/$(BUILD) --idle 600 || rc=1; \
	exit $$rc

soak: build mongo-tools
	@SY_BUILD_DIR=$(CURDIR)/$(BUILD) SY_SOAK=1 $(PYTEST) -m soak tests/integration

fuzz: build-fuzz
	@scripts/fuzz.sh $(FUZZBUILD) long

# Not part of `make test` (~4 min): go-sql-driver/mysql's and mysqlclient's own test suites run directly and
# through switchyardd, compared per test (differences must be in conformance/known_differences.json), and a
# database/sql pool workload through 10 switches (scripts/conformance.py; clients cached outside the repo);
# then the tests marked `conformance` (more client implementations, e.g. mysql-connector-python on a 3-node
# cluster: tests/integration/test_cluster_clients.py; scripts/install-mysql-connector-python.sh, ~10 s once).
conformance: build test-clients
	@$(PY) scripts/conformance.py --build $(CURDIR)/$(BUILD)
	@scripts/install-mysql-connector-python.sh
	@SY_BUILD_DIR=$(CURDIR)/$(BUILD) $(PYTEST) -m conformance tests/integration

clean:
	rm -rf $(BUILD) $(ASAN) $(TSAN) $(FUZZBUILD)
