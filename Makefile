# The two commands of the README, on a fresh Debian 12 machine (as root):
#   make run    build, then the main job on its built-in default workload
#   make test   every test (Open MPI and MPICH, gcc and clang, sanitizers)
# Both install missing Debian packages first (scripts/install-deps.sh).
BUILD ?= build
NP ?= 4
OMPI_CMAKE = -DMPI_C_COMPILER=mpicc.openmpi -DMPIEXEC_EXECUTABLE=/usr/bin/mpiexec.openmpi
MPIRUN = mpiexec.openmpi --allow-run-as-root --oversubscribe

.PHONY: deps build run test clean

deps:
	@scripts/install-deps.sh

build: deps
	@rm -f $(BUILD)/CMakeCache.txt
	@cmake -S . -B $(BUILD) $(OMPI_CMAKE) >/dev/null
	@cmake --build $(BUILD) -j2

# Main job: the collective under random delays, MPI_Alltoallv vs bounded lag, as a table.
run: build
	$(MPIRUN) -np $(NP) $(BUILD)/bench/bls-bench --modes sync,bls:1,bls:4 \
	  --iters 500 --rounds 2 --bytes 65536 --work-us 1000 --delay exp:1000 \
	  --json $(BUILD)/main-job.json

test: deps
	@scripts/run-tests.sh

clean:
	rm -rf build build-mpich build-clang build-asan
