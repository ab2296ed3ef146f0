// torch_1_13.cpp: everything that depends on the PyTorch version, for PyTorch 1.13.
//
// In 1.13 a third-party backend is a c10d::ProcessGroup subclass returned by a creator
// (store, rank, size, timeout) that Python registers with Backend.register_backend.  PyTorch
// 2.x splits ProcessGroup into a ProcessGroup facade and c10d::Backend implementations (and
// passes DistributedBackendOptions to creators registered with extended_api): porting means
// rewriting this file, with the same forwarding to Core.
#include "bls_core.hpp"
#include "harness.h"

#include <pybind11/stl.h>

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/utils/pybind.h>

#include <pybind11/chrono.h>

namespace torch_bls {
namespace {

class ProcessGroupBls final : public c10d::ProcessGroup {
 public:
  ProcessGroupBls(std::shared_ptr<Core> core, int rank, int size)
      : c10d::ProcessGroup(rank, size), core_(std::move(core)) {}
  ~ProcessGroupBls() override {
    // Python drops the group holding the GIL, while the worker thread may be dropping the last
    // reference to a tensor whose Python object needs the GIL: waiting for the worker with the
    // GIL held deadlocked until the shutdown's grace period gave up on it.
    if (PyGILState_Check()) {
      pybind11::gil_scoped_release nogil;
      core_->shutdown();
    } else {
      core_->shutdown();
    }
  }

  const std::string getBackendName() const override { return "bls"; }
  Core& core() { return *core_; }

  c10::intrusive_ptr<c10d::Work> broadcast(std::vector<at::Tensor>& tensors,
                                           const c10d::BroadcastOptions& opts) override {
    return core_->broadcast(tensors, opts.rootRank);
  }
  c10::intrusive_ptr<c10d::Work> allreduce(std::vector<at::Tensor>& tensors,
                                           const c10d::AllreduceOptions& opts) override {
    return core_->allReduce(tensors, opts.reduceOp);
  }
  c10::intrusive_ptr<c10d::Work> allgather(std::vector<std::vector<at::Tensor>>& outputs,
                                           std::vector<at::Tensor>& inputs,
                                           const c10d::AllgatherOptions&) override {
    return core_->allGather(outputs, inputs);
  }
  c10::intrusive_ptr<c10d::Work> _allgather_base(at::Tensor& output, at::Tensor& input,
                                                 const c10d::AllgatherOptions&) override {
    return core_->allGatherBase(output, input);
  }
  c10::intrusive_ptr<c10d::Work> gather(std::vector<std::vector<at::Tensor>>& outputs,
                                        std::vector<at::Tensor>& inputs,
                                        const c10d::GatherOptions& opts) override {
    return core_->gather(outputs, inputs, opts.rootRank);
  }
  c10::intrusive_ptr<c10d::Work> scatter(std::vector<at::Tensor>& outputs,
                                         std::vector<std::vector<at::Tensor>>& inputs,
                                         const c10d::ScatterOptions& opts) override {
    return core_->scatter(outputs, inputs, opts.rootRank);
  }
  c10::intrusive_ptr<c10d::Work> alltoall_base(at::Tensor& output, at::Tensor& input,
                                               std::vector<int64_t>& output_splits,
                                               std::vector<int64_t>& input_splits,
                                               const c10d::AllToAllOptions&) override {
    return core_->allToAllSingle(output, input, output_splits, input_splits);
  }
  c10::intrusive_ptr<c10d::Work> barrier(const c10d::BarrierOptions&) override {
    return core_->barrier();
  }

 private:
  std::shared_ptr<Core> core_;
};

c10::intrusive_ptr<c10d::ProcessGroup> createProcessGroup(
    const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
    std::chrono::milliseconds timeout, int lag) {
  auto core = Core::create(store, rank, size, timeout, lag);
  return c10::make_intrusive<ProcessGroupBls>(std::move(core), rank, size);
}

ProcessGroupBls& asBls(const c10::intrusive_ptr<c10d::ProcessGroup>& pg) {
  auto* bls = dynamic_cast<ProcessGroupBls*>(pg.get());
  TORCH_CHECK(bls, "bls: the group's backend is ", pg->getBackendName(), ", not bls");
  return *bls;
}

// harness_lag_policy_t owned by a Python object.
class LagPolicy {
 public:
  LagPolicy(int processes, int max_lag, int window, double tolerance)
      : P_(processes),
        pol_(harness_lag_policy_new(processes, max_lag, window, tolerance),
             harness_lag_policy_free) {
    TORCH_CHECK(pol_, "LagPolicy: processes >= 1, 0 <= max_lag <= ", BLS_MAX_LAG,
                ", window >= 4 and 0 <= tolerance < 1 are needed (got ", processes, ", ", max_lag,
                ", ", window, ", ", tolerance, ")");
  }
  void bound(double seconds) { harness_lag_policy_bound(pol_.get(), seconds); }
  void observe(const std::vector<double>& work, double comm, double arrival) {
    TORCH_CHECK(static_cast<int>(work.size()) == P_, "LagPolicy.observe: ", work.size(),
                " figures of work for ", P_, " processes");
    harness_lag_observe(pol_.get(), work.data(), comm, arrival);
  }
  int choose() { return harness_lag_choose(pol_.get()); }

 private:
  int P_;
  std::unique_ptr<harness_lag_policy_t, void (*)(harness_lag_policy_t*)> pol_;
};

}  // namespace
}  // namespace torch_bls

PYBIND11_MODULE(_C, m) {
  namespace py = pybind11;
  using namespace torch_bls;
  m.doc() = "torch_bls native part: the bls process group (PyTorch 1.13 glue)";
  m.def("create_process_group", &createProcessGroup, py::arg("store"), py::arg("rank"),
        py::arg("size"), py::arg("timeout"), py::arg("lag"),
        py::call_guard<py::gil_scoped_release>(),
        "Creates the bls process group (collective over the group's processes).");
  m.def(
      "lag", [](const c10::intrusive_ptr<c10d::ProcessGroup>& pg) { return asBls(pg).core().lag(); },
      py::arg("group"), "The lag bound L of a bls process group.");
  m.def(
      "stats",
      [](const c10::intrusive_ptr<c10d::ProcessGroup>& pg) {
        bls_stats_t s;
        {
          // Core::stats takes the lock under which requests complete, and completing one may
          // need the GIL (a tensor's last reference): never wait for it holding the GIL.
          py::gil_scoped_release nogil;
          s = asBls(pg).core().stats();
        }
        py::dict d;
        d["posted"] = s.posted;
        d["completed"] = s.completed;
        d["post_wait_seconds"] = s.post_wait_seconds;
        d["wait_seconds"] = s.wait_seconds;
        d["progress_cpu_seconds"] = s.progress_cpu_seconds;
        d["progress_standby_seconds"] = s.progress_standby_seconds;
        d["buffer_bytes"] = s.buffer_bytes;
        return d;
      },
      py::arg("group"),
      "all_to_all_single statistics of a bls process group at this process, summed over the "
      "element sizes in use: posted, completed, post_wait_seconds, wait_seconds, "
      "progress_cpu_seconds, progress_standby_seconds, buffer_bytes (bls_stats_t).");
  m.def(
      "ideal_time",
      [](const std::vector<std::vector<double>>& work, int lag) {
        // The harness's ideal model (bls-semantics): one implementation for C and Python.
        size_t P = work.size(), K = P ? work[0].size() : 0;
        std::vector<double> flat, scratch(P + K + 1);
        for (const auto& row : work) {
          TORCH_CHECK(row.size() == K, "ideal_time: every process needs ", K, " iterations");
          flat.insert(flat.end(), row.begin(), row.end());
        }
        TORCH_CHECK(lag >= 0, "ideal_time: lag ", lag, " is negative");
        return harness_ideal_time(flat.data(), static_cast<int>(P), static_cast<int>(K), lag,
                                  scratch.data());
      },
      py::arg("work"), py::arg("lag"),
      "T_ideal(lag) of a trace work[p][k] (seconds of process p in iteration k outside the "
      "collective), the ideal model of bls-semantics as harness.h computes it.");
  m.def(
      "ideal_open",
      [](const std::vector<std::vector<double>>& work, const std::vector<double>& arrival,
         int lag) {
        // The open-loop ideal model (harness.h): when each query is done everywhere.
        size_t P = work.size(), K = arrival.size();
        std::vector<double> flat, done(K + 1), scratch(P + 1);
        for (const auto& row : work) {
          TORCH_CHECK(row.size() == K, "ideal_open: every process needs ", K, " queries");
          flat.insert(flat.end(), row.begin(), row.end());
        }
        TORCH_CHECK(lag >= 0, "ideal_open: lag ", lag, " is negative");
        TORCH_CHECK(P > 0, "ideal_open: no processes");
        harness_ideal_open(flat.data(), arrival.data(), static_cast<int>(P), static_cast<int>(K),
                           lag, done.data(), scratch.data());
        done.resize(K);
        return done;
      },
      py::arg("work"), py::arg("arrival"), py::arg("lag"),
      "done[k] of the open-loop ideal model (harness.h): queries arriving at arrival[k] "
      "seconds, work[p][k] seconds of process p on query k, zero communication.");
  // The adaptive lag policy (harness.h): the same decisions as bls-dlrm's bls:auto.
  py::class_<LagPolicy>(m, "LagPolicy",
                        "harness.h's lag policy: the smallest run-ahead whose ideal time on "
                        "the recent window is within the tolerance of MAX's.")
      .def(py::init<int, int, int, double>(), py::arg("processes"), py::arg("max_lag"),
           py::arg("window"), py::arg("tolerance"))
      .def("bound", &LagPolicy::bound, py::arg("seconds"),
           "Open loop: keep the window's worst ideal latency within this (0: none).")
      .def("observe", &LagPolicy::observe, py::arg("work"), py::arg("comm"), py::arg("arrival"),
           "The next batch: every process's work (seconds), the exchange's own time (seconds, "
           "negative or NaN: not seen), its arrival (NaN in a closed loop).")
      .def("choose", &LagPolicy::choose, "The run-ahead for the next batch, 0 .. max_lag.");
  m.def(
      "version", []() { return std::string(bls_version(nullptr, nullptr, nullptr)); },
      "The version of libbls this module runs on (\"MAJOR.MINOR.PATCH\").");
  m.def("finalize", &Core::finalizeAll, py::call_guard<py::gil_scoped_release>(),
        "Shuts every bls group down and finalizes MPI if this module initialised it.");
}
