# The two commands of the README, on a fresh Debian 12 machine (as root):
#   make run    build, then the main job on its built-in default workload
#   make test   every test (Open MPI and MPICH, gcc and clang, sanitizers)
# Both install missing Debian packages first (scripts/install-deps.sh).
BUILD ?= build
NP ?= 4
OMPI_CMAKE = -DMPI_C_COMPILER=mpicc.openmpi -DMPIEXEC_EXECUTABLE=/usr/bin/mpiexec.openmpi
MPIRUN = mpiexec.openmpi --allow-run-as-root --oversubscribe

.PHONY: deps build run test fuzz soak install uninstall clean

deps:
	@scripts/install-deps.sh

build: deps
	@rm -f $(BUILD)/CMakeCache.txt
	@cmake -S . -B $(BUILD) $(OMPI_CMAKE) >/dev/null
	@cmake --build $(BUILD) -j2

# Main job: 4-process DLRM inference on the built-in synthetic Criteo-like workload with skewed
# lookups (power-law hot tables on process 0, per-batch bursts of heavy bags) and random
# per-process delays, MPI_Alltoallv vs bounded lag, interleaved.  Offline: 200 batches per
# driver, the throughput.  Server: 1000 Poisson queries at 0.9 of sync's offline rate, the
# latency a client sees against MLPerf's 60 ms p99 bound.  A table, JSON and a PNG.
MAIN_JOB = --batch-size 256 --synthetic-samples 256000 --max-batches 200 --pooling 2 \
  --bursts 0.1:8 --hot-tables 0-6:1.05 --delay exp:5000 --driver sync,bls:1,bls:4,bls:auto \
  --scenario offline,server --load 0.9 --queries 1000
run: build
	$(MPIRUN) -np $(NP) $(BUILD)/tools/bls-dlrm $(MAIN_JOB) --json $(BUILD)/main-job.json
	@/usr/bin/python3 bench/plot_dlrm.py $(BUILD)/main-job.json $(BUILD)/main-job.png

test: deps
	@scripts/run-tests.sh

# libFuzzer over the Criteo reader, the safetensors loader and the option parser (clang, ASan,
# UBSan), FUZZ_SECONDS each; `make test` replays their corpora (tests/fuzz).
FUZZ_SECONDS ?= 60
fuzz: deps
	@scripts/fuzz.sh $(FUZZ_SECONDS)

# Long runs: 10^6 exactly delivered iterations at P = 3, 4 and L = 1, 4; a 30,000-batch
# bls-dlrm run whose memory and descriptors must stay flat (scripts/soak.sh; about 7 min).
soak: build
	@scripts/soak.sh $(BUILD)

# Headers, libraries, tools, pkg-config and CMake files, the torch_bls package (README, Install).
PREFIX ?= /usr/local
install: build
	cmake --install $(BUILD) --prefix $(PREFIX)
uninstall:
	cmake --build $(BUILD) --target uninstall

clean:
	rm -rf build build-mpich build-clang build-asan build-fuzz
